//! Limits on what one user may cost the node and Redis, checked before the costly part runs:
//! the posting budget looked at before a voice upload is decoded, and the daily audio quota.
//!
//! Each check is one command or one single-key script, so it touches one hash slot (the user's).

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{keys, Store};
use crate::error::{Error, Result};

const DAY_SECS: u64 = 86_400;

/// Adds ARGV[1] bytes to the day's count unless that passes the quota ARGV[2]; the count lives
/// ARGV[3] seconds. Answers 1 (reserved) or 0 (over the quota, nothing added).
const RESERVE_LUA: &str = r#"
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
if n > tonumber(ARGV[2]) then
  redis.call('DECRBY', KEYS[1], ARGV[1])
  return 0
end
return 1
"#;

/// Gives ARGV[1] bytes back, unless the day's count has expired meanwhile; a count back at 0 is
/// deleted, so a refused upload leaves nothing behind.
const RELEASE_LUA: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = redis.call('DECRBY', KEYS[1], ARGV[1])
if n <= 0 then redis.call('DEL', KEYS[1]) end
return n
"#;

static RELEASE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(RELEASE_LUA));

static RESERVE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(RESERVE_LUA));

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Audio bytes taken from a user's daily quota for one upload; given back with
/// [`Store::release_audio`] when the upload is not stored.
#[derive(Debug)]
pub struct AudioReservation {
    username: String,
    day: u64,
    bytes: u64,
}

impl Store {
    /// Refuses (429 `rate_limited`, with the wait) when the user's posting budget is spent:
    /// looked at, not counted, so that a post that will be refused anyway costs no decoding.
    /// The post itself is counted by its script as every post is.
    pub async fn require_post_budget(&self, username: &str) -> Result<()> {
        let limit = u64::from(self.settings.ws.rate_limit_messages);
        let key = keys::post_rate(username);
        let mut conn = self.shared();
        let (count, ttl_ms): (Option<u64>, i64) = redis::pipe()
            .get(&key)
            .cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        if count.unwrap_or(0) >= limit {
            return Err(Error::TooManyPosts {
                retry_after: (ttl_ms.max(0) as u64).div_ceil(1000).max(1),
            });
        }
        Ok(())
    }

    /// Takes `bytes` from the user's audio quota of the current UTC day (`voice.daily_quota_bytes`,
    /// shared by every node), or refuses with 429 `rate_limited` and the seconds until the day
    /// ends. With no quota configured, takes nothing.
    pub async fn reserve_audio(&self, username: &str, bytes: u64) -> Result<AudioReservation> {
        let quota = self.settings.voice.daily_quota_bytes;
        let now = now_secs();
        let day = now / DAY_SECS;
        if quota == 0 {
            return Ok(AudioReservation {
                username: username.to_string(),
                day,
                bytes: 0,
            });
        }
        let mut conn = self.shared();
        let ok: i64 = RESERVE_SCRIPT
            .key(keys::audio_quota(username, day))
            .arg(bytes)
            .arg(quota)
            .arg(2 * DAY_SECS)
            .invoke_async(&mut conn)
            .await?;
        if ok != 1 {
            return Err(Error::Limited {
                message: format!("voice uploads are limited to {quota} bytes per user per day"),
                retry_after: DAY_SECS - now % DAY_SECS,
            });
        }
        Ok(AudioReservation {
            username: username.to_string(),
            day,
            bytes,
        })
    }

    /// Gives back a reservation of an upload that was not stored (bad audio, a refused or
    /// repeated post). A failure to give it back is logged: the user loses some quota for the day.
    pub async fn release_audio(&self, r: AudioReservation) {
        if r.bytes == 0 {
            return;
        }
        let mut conn = self.shared();
        let res: redis::RedisResult<i64> = RELEASE_SCRIPT
            .key(keys::audio_quota(&r.username, r.day))
            .arg(r.bytes)
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = res {
            log::warn!(
                "voice: giving back {} quota bytes of {}: {e}",
                r.bytes,
                r.username
            );
        }
    }
}

/// Counts one action in a fixed window: KEYS[1] the count, ARGV[1] the limit, ARGV[2] the window
/// in ms. Answers {1, 0} when allowed, {0, ms left in the window} when over the limit.
const COUNT_LUA: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then return {0, redis.call('PTTL', KEYS[1])} end
return {1, 0}
"#;

static COUNT_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(COUNT_LUA));

/// Creating a channel: KEYS[1] the hourly count, KEYS[2] the user's total; ARGV[1] the hourly
/// limit, ARGV[2] the window in ms, ARGV[3] the total cap. Answers {'ok', 0}, {'rate', ms left}
/// or {'cap', 0}; only 'ok' counts anything in the total.
const CREATE_LUA: &str = r#"
if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[3]) then return {'cap', 0} end
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then return {'rate', redis.call('PTTL', KEYS[1])} end
redis.call('INCR', KEYS[2])
return {'ok', 0}
"#;

static CREATE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(CREATE_LUA));

/// A kind of action with a per-user limit in `[limits]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Joining or leaving a public channel.
    Join,
    /// Setting a read marker.
    Read,
    /// A `typing` frame.
    Typing,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Join => "join",
            Action::Read => "read",
            Action::Typing => "typing",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Action::Join => "joins and leaves",
            Action::Read => "read markers",
            Action::Typing => "typing notices",
        }
    }
}

fn secs(ms: i64) -> u64 {
    (ms.max(0) as u64).div_ceil(1000).max(1)
}

impl Store {
    /// Counts one `action` of `username` against its per-minute limit; beyond it, 429
    /// `rate_limited` with the seconds left in the window (nothing else is done then).
    pub async fn count_action(&self, username: &str, action: Action) -> Result<()> {
        let l = &self.settings.limits;
        let limit = match action {
            Action::Join => l.joins_per_minute,
            Action::Read => l.reads_per_minute,
            Action::Typing => l.typing_per_minute,
        };
        let mut conn = self.shared();
        let (ok, ms): (i64, i64) = COUNT_SCRIPT
            .key(keys::action_count(username, action.name()))
            .arg(limit)
            .arg(60_000)
            .invoke_async(&mut conn)
            .await?;
        if ok == 1 {
            return Ok(());
        }
        Err(Error::Limited {
            message: format!("at most {limit} {} per minute", action.what()),
            retry_after: secs(ms),
        })
    }

    /// Allows `username` to create one public channel: at most `limits.channel_creates_per_hour`
    /// attempts an hour (429 `rate_limited`) and `limits.max_channels_per_user` channels in all
    /// (403 `forbidden`). Counted in the total until [`Store::channel_not_created`] gives it back.
    pub async fn allow_channel_create(&self, username: &str) -> Result<()> {
        let l = &self.settings.limits;
        let mut conn = self.shared();
        let (tag, ms): (String, i64) = CREATE_SCRIPT
            .key(keys::action_count(username, "create"))
            .key(keys::channels_created(username))
            .arg(l.channel_creates_per_hour)
            .arg(3_600_000)
            .arg(l.max_channels_per_user)
            .invoke_async(&mut conn)
            .await?;
        match tag.as_str() {
            "ok" => Ok(()),
            "rate" => Err(Error::Limited {
                message: format!(
                    "at most {} new channels per hour",
                    l.channel_creates_per_hour
                ),
                retry_after: secs(ms),
            }),
            _ => Err(Error::Forbidden(format!(
                "one user may create at most {} channels",
                l.max_channels_per_user
            ))),
        }
    }

    /// Gives back the count of a channel that was allowed but not created (its name was taken).
    pub async fn channel_not_created(&self, username: &str) -> Result<()> {
        let mut conn = self.shared();
        let _: i64 = redis::cmd("DECR")
            .arg(keys::channels_created(username))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}
