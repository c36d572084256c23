//! Posts to one Redis go out in batches: the posting script of every post a node has waiting
//! runs in one `EVALSHA` ([`BATCH_LUA`]), each post in its own protected call, so a batch of 40
//! posts costs Redis one script call, one Lua set-up and one `MULTI`/`EXEC` in the append-only
//! file instead of 40. Nothing waits to fill a batch: a post goes out at once when no batch is
//! in flight; while [`IN_FLIGHT`] batches are, the posts that arrive meanwhile gather into the
//! next one (group commit), so a batch grows only as far as Redis is behind.
//!
//! Only on one Redis: on a cluster the posts of a batch would be keys of many slots, which a
//! script may declare only within one slot, so there each post is a script call of its own.
//!
//! Each post's answer is its own (`{'ok', id}`, a refusal, or `{'error', why}` when Redis
//! refused one of its commands); one post's error never touches another post of the batch.
//! When the whole call fails (the connection dropped, the reply timed out), every post of it is
//! answered so (`unknown_outcome`: re-sent with its `client_id`, it is stored at most once).

use std::sync::{Arc, LazyLock};

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::conn::Conn;

/// Posts in one batch at most.
pub(crate) const MAX_BATCH: usize = 64;
/// Batches one node has in flight at once; more posts wait and gather into the next batch.
pub(crate) const IN_FLIGHT: usize = 2;

/// Runs `body` (the posting script, with `KEYS` and `ARGV` its parameters) once per post.
/// ARGV[1] the number of posts n, ARGV[2i] and ARGV[2i+1] the counts of keys and values of post
/// i, then the posts' values one after another; KEYS the posts' keys one after another.
fn batch_lua(body: &str) -> String {
    format!(
        r#"
local function post_one(KEYS, ARGV)
{body}
end
local n = tonumber(ARGV[1])
local kpos, apos = 1, 2 + 2 * n
local out = {{}}
for i = 1, n do
  local nk, na = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local k, a = {{}}, {{}}
  for j = 1, nk do k[j] = KEYS[kpos + j - 1] end
  for j = 1, na do a[j] = ARGV[apos + j - 1] end
  kpos, apos = kpos + nk, apos + na
  local ok, r = pcall(post_one, k, a)
  if ok then
    out[i] = r
  else
    if type(r) == 'table' and r.err then r = r.err end
    out[i] = {{'error', tostring(r)}}
  end
end
return out
"#
    )
}

pub(crate) static BATCH_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(&batch_lua(&super::posting::post_lua())));

/// A post's reply, or the error of the whole call (a [`redis::RedisError`] is `Clone`).
type Answer = redis::RedisResult<Vec<String>>;

/// One post's keys and values for the posting script.
struct Job {
    keys: Vec<String>,
    args: Vec<String>,
    answer: oneshot::Sender<Answer>,
}

/// The node's batcher of posts to one Redis.
#[derive(Clone)]
pub(crate) struct Batcher {
    tx: mpsc::UnboundedSender<Job>,
}

impl Batcher {
    /// Starts the batcher's task on the current runtime, sending on `conn`.
    pub(crate) fn spawn(conn: Conn) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(conn, rx));
        Batcher { tx }
    }

    /// Queues the posting script of one post for the next batch, at once (posts queued one
    /// after another run in that order); the future answers it.
    pub(crate) fn submit(
        &self,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> impl std::future::Future<Output = Answer> {
        let (answer, rx) = oneshot::channel();
        let sent = self.tx.send(Job { keys, args, answer }).is_ok();
        async move {
            if !sent {
                // Nothing was sent.
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "the posting batcher stopped",
                )));
            }
            // The batch's task went away with the post maybe sent: as a dropped connection.
            rx.await.unwrap_or_else(|_| {
                Err(redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "the posting batcher dropped the post",
                )))
            })
        }
    }
}

async fn run(conn: Conn, mut rx: mpsc::UnboundedReceiver<Job>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        // What arrived while the earlier batches were in flight goes out together.
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let mut conn = conn.clone();
        tokio::spawn(async move {
            send(&mut conn, jobs).await;
            drop(permit);
        });
    }
}

async fn send(conn: &mut Conn, jobs: Vec<Job>) {
    let mut inv = BATCH_SCRIPT.prepare_invoke();
    inv.arg(jobs.len());
    for j in &jobs {
        inv.arg(j.keys.len()).arg(j.args.len());
    }
    for j in &jobs {
        for k in &j.keys {
            inv.key(k);
        }
        for a in &j.args {
            inv.arg(a);
        }
    }
    let r: redis::RedisResult<Vec<Vec<String>>> = inv.invoke_async(conn).await;
    match r {
        Ok(answers) => {
            let mut answers = answers.into_iter();
            for j in jobs {
                let a = answers.next().ok_or_else(|| {
                    redis::RedisError::from((
                        redis::ErrorKind::UnexpectedReturnType,
                        "the batch answered fewer posts than it was sent",
                    ))
                });
                let _ = j.answer.send(a);
            }
        }
        Err(e) => {
            for j in jobs {
                let _ = j.answer.send(Err(e.clone()));
            }
        }
    }
}
