//! Resharding under load on the six-process Redis Cluster: the hash slot of a busy channel moves
//! from one master to another (`CLUSTER SETSLOT … IMPORTING` / `MIGRATING`, its keys moved with
//! `MIGRATE` in small batches, `CLUSTER SETSLOT … NODE` on every master: what `redis-cli
//! --cluster reshard` does) while two nodes post to it and two sockets read it, one of them
//! roaming to the other node with `resume` halfway through. The nodes follow the slot by
//! themselves, every acknowledged post is stored once and delivered once to each reader, and
//! search finds each post once, also after the slot of a search index's own name moves.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatnode::store::conn::slot_of;
use chatnode::store::{keys, Store};
use common::cluster::{cluster_settings, TestCluster};
use serde_json::{json, Value};

const CHANNEL: &str = "busy";
/// Posts per poster.
const POSTS: usize = 150;

/// Runs a command on the node at `port`.
async fn on(cluster: &TestCluster, port: u16, cmd: &redis::Cmd) -> redis::RedisResult<Value> {
    let v: redis::Value = cmd
        .query_async(&mut cluster.node(port).conn().await)
        .await?;
    Ok(value_json(v))
}

fn value_json(v: redis::Value) -> Value {
    match v {
        redis::Value::Int(n) => json!(n),
        redis::Value::BulkString(b) => json!(String::from_utf8_lossy(&b)),
        redis::Value::SimpleString(s) => json!(s),
        redis::Value::Okay => json!("OK"),
        redis::Value::Array(a) => Value::Array(a.into_iter().map(value_json).collect()),
        _ => Value::Null,
    }
}

async fn my_id(cluster: &TestCluster, port: u16) -> String {
    on(cluster, port, redis::cmd("CLUSTER").arg("MYID"))
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

/// `INFO errorstats` of a node, the cluster's redirections and refusals only (`ASK`, `MOVED`,
/// `TRYAGAIN`, and `NOSCRIPT` of a script run where it was not loaded yet): error → count.
async fn error_stats(cluster: &TestCluster, port: u16) -> HashMap<String, u64> {
    let text: String = redis::cmd("INFO")
        .arg("errorstats")
        .query_async(&mut cluster.node(port).conn().await)
        .await
        .unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("errorstat_"))
        .filter_map(|l| {
            let (name, rest) = l.split_once(":count=")?;
            ["ASK", "MOVED", "TRYAGAIN", "NOSCRIPT"]
                .contains(&name)
                .then(|| Some((name.to_string(), rest.trim().parse().ok()?)))?
        })
        .collect()
}

/// `INFO commandstats` of a node: command → (failed calls, rejected calls), where either is
/// not zero.
async fn command_failures(cluster: &TestCluster, port: u16) -> HashMap<String, (u64, u64)> {
    let text: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut cluster.node(port).conn().await)
        .await
        .unwrap();
    let field = |l: &str, name: &str| -> u64 {
        l.split(',')
            .find_map(|f| f.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    text.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let counts = (field(rest, "failed_calls="), field(rest, "rejected_calls="));
            (counts != (0, 0)).then(|| (name.to_string(), counts))
        })
        .collect()
}

/// Moves `slot` from master `src` to master `dst`, `batch` keys per `MIGRATE` with `pause`
/// between batches (posts keep coming meanwhile); answers how many keys moved.
async fn move_slot(
    cluster: &TestCluster,
    slot: u16,
    src: u16,
    dst: u16,
    batch: usize,
    pause: Duration,
) -> usize {
    let src_id = my_id(cluster, src).await;
    let dst_id = my_id(cluster, dst).await;
    let setslot = |state: &str, id: &str| {
        let mut c = redis::cmd("CLUSTER");
        c.arg("SETSLOT").arg(slot).arg(state).arg(id);
        c
    };
    on(cluster, dst, &setslot("IMPORTING", &src_id))
        .await
        .unwrap();
    on(cluster, src, &setslot("MIGRATING", &dst_id))
        .await
        .unwrap();
    let mut moved = 0;
    loop {
        let keys = on(
            cluster,
            src,
            redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(batch),
        )
        .await
        .unwrap();
        let keys: Vec<String> = keys
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        if keys.is_empty() {
            break;
        }
        let migrate = |replace: bool, keys: &[String]| {
            let mut c = redis::cmd("MIGRATE");
            c.arg("127.0.0.1").arg(dst).arg("").arg(0).arg(5000);
            if replace {
                c.arg("REPLACE");
            }
            c.arg("KEYS").arg(keys);
            c
        };
        if let Err(e) = on(cluster, src, &migrate(false, &keys)).await {
            // A key written on the importing master while the slot moves (through `ASK`: a
            // RediSearch 1.x index's term written there by an `FT.ADDHASH` that found the index
            // already moved) stops `MIGRATE` with `BUSYKEY`; an operator resumes with `REPLACE`
            // (`redis-cli --cluster fix --cluster-replace`), as DEPLOY.md says. The nodes re-home
            // the entries of the indexes whose names change afterwards, and the search checks
            // below still ask for every post.
            assert!(e.to_string().contains("BUSYKEY"), "{e}");
            eprintln!("BUSYKEY while slot {slot} moved, one of: {keys:?}");
            on(cluster, src, &migrate(true, &keys)).await.unwrap();
        }
        moved += keys.len();
        tokio::time::sleep(pause).await;
    }
    // The new owner first, then the old one, then the others (as redis-cli does).
    let mut order = vec![dst, src];
    order.extend(
        cluster
            .master_ports()
            .await
            .into_iter()
            .filter(|p| *p != dst && *p != src),
    );
    for port in order {
        on(cluster, port, &setslot("NODE", &dst_id)).await.unwrap();
    }
    moved
}

/// Posts `<prefix><i>` for i in 0..POSTS with client_id `c<prefix><i>`, re-sending a post that
/// was not answered `posted` (same client_id) until it is; sends (text, id, tries) of each.
async fn poster(
    ws_url: String,
    prefix: &'static str,
    acked: tokio::sync::mpsc::UnboundedSender<(String, String)>,
) -> (usize, Vec<String>) {
    let mut ws = common::Ws::connect_url(&ws_url).await;
    let mut resent = 0;
    let mut refusals = Vec::new();
    for i in 0..POSTS {
        let text = format!("{prefix}{i} busy");
        let cid = format!("c{prefix}{i}");
        loop {
            match ws.post_once(CHANNEL, &text, &cid).await {
                Some(v) if v["type"] == "posted" => {
                    let id = v["posted"]["id"].as_str().unwrap().to_string();
                    let _ = acked.send((text.clone(), id));
                    break;
                }
                Some(v) => {
                    resent += 1;
                    refusals.push(v["error"]["code"].as_str().unwrap_or("?").to_string());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None => {
                    resent += 1;
                    refusals.push("closed".into());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    ws = common::Ws::connect_url(&ws_url).await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (resent, refusals)
}

/// Where and when a reader roams: told to leave, it closes its socket; told to come back, it
/// opens one at the URL, resuming from the last ID it read.
struct Roam {
    leave: Arc<tokio::sync::Notify>,
    back: Arc<tokio::sync::Notify>,
    url: String,
}

/// Reads the channel's messages until both posters' last posts are in, `stop` is set and two
/// quiet seconds passed; counts each text, and the messages replayed on resume.
async fn reader(
    url: String,
    roam: Option<Roam>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (HashMap<String, usize>, u64) {
    let mut ws = common::Ws::connect_url(&url).await;
    common::subscribe(&mut ws, &[CHANNEL]).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut last_id = String::new();
    let mut replayed = 0;
    let lasts = [
        format!("a{} busy", POSTS - 1),
        format!("b{} busy", POSTS - 1),
    ];
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut roamed = false;
    while Instant::now() < deadline {
        let next = async {
            match (&roam, roamed) {
                (Some(r), false) => tokio::select! {
                    v = ws.try_recv(Duration::from_secs(2)) => Some(v),
                    _ = r.leave.notified() => None,
                },
                _ => Some(ws.try_recv(Duration::from_secs(2)).await),
            }
        };
        let Some(v) = next.await else {
            // Roam: away for a while, then a new socket on the other node, resuming after the
            // last message read.
            roamed = true;
            drop(ws);
            let r = roam.as_ref().unwrap();
            r.back.notified().await;
            ws = common::Ws::connect_url(&r.url).await;
            ws.send(json!({"type": "resume", "resume": {"channels": {CHANNEL: last_id}}}))
                .await;
            continue;
        };
        let Some(v) = v else {
            if lasts.iter().all(|l| seen.contains_key(l))
                && stop.load(std::sync::atomic::Ordering::SeqCst)
            {
                break;
            }
            continue;
        };
        match v["type"].as_str() {
            Some("message") if v["message"]["channel"] == CHANNEL => {
                *seen
                    .entry(v["message"]["text"].as_str().unwrap().to_string())
                    .or_default() += 1;
                last_id = v["message"]["id"].as_str().unwrap().to_string();
            }
            Some("subscribed") => {
                replayed += v["subscribed"]["replayed"].as_u64().unwrap_or(0);
            }
            _ => {}
        }
    }
    (seen, replayed)
}

#[tokio::test]
async fn a_busy_channels_slot_moves_to_another_master_and_nothing_is_lost_or_doubled() {
    let cluster = TestCluster::start().await;
    let mut s = cluster_settings(&cluster.seeds());
    s.ws.rate_limit_messages = 100_000;
    let a = common::node(s.clone());
    let b = common::node(s.clone());
    let (alpha, beta) = common::channel_with_member(&a, &b, CHANNEL, "alpha", "beta").await;
    let url = |n: &chatnode::NodeHandle, t: &str| format!("{}?token={t}", n.ws_url());

    let log = common::CapturedLog::start();
    // Readers: alpha on node B all along; beta on node B too, roaming to node A with resume
    // while the slot is half moved.
    let leave = Arc::new(tokio::sync::Notify::new());
    let back = Arc::new(tokio::sync::Notify::new());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stayer = tokio::spawn(reader(url(&b, &alpha), None, stop.clone()));
    let roamer = tokio::spawn(reader(
        url(&b, &beta),
        Some(Roam {
            leave: leave.clone(),
            back: back.clone(),
            url: url(&a, &beta),
        }),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Posters: alpha on node A, beta on node B.
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
    let pa = tokio::spawn(poster(url(&a, &alpha), "a", acked_tx.clone()));
    let pb = tokio::spawn(poster(url(&b, &beta), "b", acked_tx));

    // A third of the posts in, the channel's slot moves.
    let mut acked: Vec<(String, String)> = Vec::new();
    while acked.len() < 2 * POSTS / 3 {
        acked.push(acked_rx.recv().await.unwrap());
    }
    let key = keys::channel(CHANNEL);
    let slot = slot_of(&key);
    let src = cluster.master_of(&key).await;
    let dst = cluster
        .master_ports()
        .await
        .into_iter()
        .find(|p| *p != src)
        .unwrap();
    let before = (
        error_stats(&cluster, src).await,
        error_stats(&cluster, dst).await,
    );
    let failures_before = (
        command_failures(&cluster, src).await,
        command_failures(&cluster, dst).await,
    );
    let started = Instant::now();
    let mover = async {
        let moved = move_slot(&cluster, slot, src, dst, 10, Duration::from_millis(50)).await;
        (moved, started.elapsed())
    };
    let roaming = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        leave.notify_one();
    };
    let ((moved, took), ()) = tokio::join!(mover, roaming);
    eprintln!("slot {slot} ({moved} keys) moved from {src} to {dst} in {took:?}");
    assert_eq!(cluster.master_of(&key).await, dst);
    let left: i64 = redis::cmd("CLUSTER")
        .arg("COUNTKEYSINSLOT")
        .arg(slot)
        .query_async(&mut cluster.node(src).conn().await)
        .await
        .unwrap();
    assert_eq!(left, 0, "no key of the slot left on the old master");
    // Ten posts stored on the new owner while the roaming reader is away (it left while posts
    // were held up by the move; those acknowledged so far are set aside), then it comes back.
    while let Ok(x) = acked_rx.try_recv() {
        acked.push(x);
    }
    for _ in 0..10 {
        acked.push(acked_rx.recv().await.unwrap());
    }
    back.notify_one();

    let (resent_a, refusals_a) = pa.await.unwrap();
    let (resent_b, refusals_b) = pb.await.unwrap();
    // A post refused while the slot moved was refused before its script ran, and said so: a
    // code to retry, never `internal`.
    for code in refusals_a.iter().chain(&refusals_b) {
        assert!(
            ["redis_unavailable", "unknown_outcome", "closed"].contains(&code.as_str()),
            "{code}"
        );
    }
    while let Ok(x) = acked_rx.try_recv() {
        acked.push(x);
    }
    assert_eq!(acked.len(), 2 * POSTS, "every post acknowledged in the end");
    eprintln!(
        "all posts acknowledged {:?} after the move began; re-sent {resent_a} + {resent_b}: \
         {refusals_a:?} {refusals_b:?}",
        started.elapsed()
    );
    let after = (
        error_stats(&cluster, src).await,
        error_stats(&cluster, dst).await,
    );
    let delta = |b: &HashMap<String, u64>, a: &HashMap<String, u64>| {
        a.iter()
            .map(|(k, v)| (k.clone(), v - b.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .collect::<HashMap<_, _>>()
    };
    eprintln!(
        "redirections and refusals during the move: old master {:?}, new master {:?}",
        delta(&before.0, &after.0),
        delta(&before.1, &after.1)
    );

    eprintln!("before the move: {before:?}");
    eprintln!(
        "failed and rejected calls, before: {failures_before:?}; after: old master {:?}, new \
         master {:?}",
        command_failures(&cluster, src).await,
        command_failures(&cluster, dst).await
    );
    for l in log.lines().iter().filter(|l| {
        l.starts_with("WARN")
            || l.starts_with("ERROR")
            || l.contains("bridge")
            || l.contains("re-hom")
    }) {
        eprintln!("log: {l}");
    }
    // Both nodes' bridges hold the room's shard subscription on the new owner (each node has a
    // reader in the room: the stayer on B, the roamer on A).
    let subscribed = common::eventually(Duration::from_secs(15), || async {
        let v = on(
            &cluster,
            dst,
            redis::cmd("PUBSUB")
                .arg("SHARDNUMSUB")
                .arg(keys::room_events(CHANNEL)),
        )
        .await
        .ok()?;
        (v[1].as_i64() == Some(2)).then_some(())
    })
    .await;
    if subscribed.is_none() {
        for port in cluster.master_ports().await {
            let v = on(
                &cluster,
                port,
                redis::cmd("PUBSUB")
                    .arg("SHARDNUMSUB")
                    .arg(keys::room_events(CHANNEL)),
            )
            .await;
            eprintln!("{port}: {v:?}");
        }
        for n in [&a, &b] {
            eprintln!(
                "{}",
                common::metric(&n.http_url(), "chatnode_bridge_reconnects_total").await
            );
        }
    }
    assert!(
        subscribed.is_some(),
        "both nodes subscribed on the new owner"
    );
    // Node B's bridge, subscribed on the old owner before the move, was told so and started
    // over.
    let reconnects = common::metric(&b.http_url(), "chatnode_bridge_reconnects_total").await;
    assert!(reconnects >= 1, "node B's bridge resubscribed");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);

    // Stored once: every acknowledged ID in the stream, each text once.
    let store = Store::connect("", Arc::new(s)).await.unwrap();
    let mut conn = store.conn().await.unwrap();
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let ids: std::collections::HashSet<&String> = entries.iter().map(|(id, _)| id).collect();
    let mut stored: HashMap<String, usize> = HashMap::new();
    for (_, f) in &entries {
        if f.get("type").map(String::as_str) == Some("message") {
            *stored.entry(f["message"].clone()).or_default() += 1;
        }
    }
    for (text, id) in &acked {
        assert!(
            ids.contains(id),
            "{text} ({id}) acknowledged but not stored"
        );
        assert_eq!(stored.get(text), Some(&1), "{text} stored once");
    }
    assert_eq!(stored.len(), 2 * POSTS);

    // Search finds every post once: the moved hashes' entries were re-homed to the new owner's
    // index (RediSearch 1.x indexes by hand), none is left behind in the old one.
    let search = |base: String, token: String| {
        let log = &log;
        async move {
            let (status, v) =
                common::get(&base, "/api/search/messages?q=busy&limit=50", &token).await;
            if status != 200 {
                for l in log.lines().iter().filter(|l| l.starts_with("ERROR")) {
                    eprintln!("log: {l}");
                }
            }
            // While an index's slot moves, a search may be refused as a moment of the cluster
            // (503 `redis_unavailable`, the client tries again); never an internal error.
            assert!(
                status == 200 || (status == 503 && v["error"]["code"] == "redis_unavailable"),
                "{status} {v}"
            );
            v
        }
    };
    let found = common::eventually(Duration::from_secs(30), || async {
        let v = search(a.http_url(), alpha.clone()).await;
        (v["total"].as_u64() == Some(2 * POSTS as u64)).then_some(v)
    })
    .await;
    let v = match found {
        Some(v) => v,
        None => panic!(
            "search total after the move: {}",
            search(a.http_url(), alpha.clone()).await["total"]
        ),
    };
    let texts: Vec<&str> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .filter(|t| t.ends_with(" busy"))
        .collect();
    assert_eq!(texts.len(), 50, "{v}");

    // Delivered once to each reader.
    let (stayed, _) = stayer.await.unwrap();
    let (roamed, replayed) = roamer.await.unwrap();
    eprintln!("the roaming reader was replayed {replayed} messages on resume");
    assert!(
        replayed >= 10,
        "the roaming reader was replayed what it missed"
    );
    for (who, seen) in [("stayer", &stayed), ("roamer", &roamed)] {
        let missing: Vec<&String> = acked
            .iter()
            .map(|(t, _)| t)
            .filter(|t| !seen.contains_key(*t))
            .collect();
        let doubled: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(missing.is_empty(), "{who} missed {missing:?}");
        assert!(doubled.is_empty(), "{who} got twice {doubled:?}");
        assert_eq!(seen.len(), 2 * POSTS, "{who}");
    }

    // Then the slot of a search index's own name moves (RediSearch 1.x keeps an index in keys
    // of that slot, and `MIGRATE` carries them): the master losing it now names its index
    // otherwise, the one gaining it may too; the nodes create the indexes of the new names and
    // re-home the entries. Search still finds every post once, and new ones.
    // First every node reads the slots after the move (its bridge checks them every 5 s) and
    // finishes the re-homing that starts: an entry re-homed while the index's own slot moves
    // goes, by `ASK`, to the master importing it, which writes the index's keys there while the
    // old master still has its own, and `MIGRATE` then stops on them (`BUSYKEY`). An operator
    // moves an index's slot on a quiet cluster for the same reason (DEPLOY.md).
    // The re-homing leaves a mark on the index it filled (`rehomed:<index>`): a node reading the
    // move later finds it and writes nothing.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let count = |pattern: &'static str| {
        let cluster = &cluster;
        async move {
            let mut n = 0;
            for port in cluster.master_ports().await {
                let held = on(cluster, port, redis::cmd("KEYS").arg(pattern))
                    .await
                    .unwrap();
                n += held.as_array().map_or(0, Vec::len);
            }
            n
        }
    };
    let mut quiet = 0;
    let started = std::time::Instant::now();
    while quiet < 10 && started.elapsed() < Duration::from_secs(30) {
        let settled = count("lock:rehome:*").await == 0 && count("rehomed:*").await > 0;
        quiet = if settled { quiet + 1 } else { 0 };
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        quiet, 10,
        "the re-homing of the first move ended and left its mark"
    );
    let base = keys::messages_index();
    let index = store.topology().index_on(base, 0);
    let from = cluster.master_of(&index).await;
    let to = cluster
        .master_ports()
        .await
        .into_iter()
        .find(|p| *p != from)
        .unwrap();
    let moved = move_slot(&cluster, slot_of(&index), from, to, 50, Duration::ZERO).await;
    eprintln!("the slot of {index} ({moved} keys) moved from {from} to {to}");
    assert!(moved > 0, "the index's keys were in its slot");
    let gamma = common::register(&a.http_url(), "gamma").await;
    common::create_channel(&a.http_url(), &gamma, "after").await;
    common::post_message(&a.http_url(), &gamma, "after", "busy once more").await;
    // Every hit of a page loads (no entry of a hash that is elsewhere), and the total is exact.
    let found = common::eventually(Duration::from_secs(30), || async {
        let v = search(a.http_url(), alpha.clone()).await;
        let loaded = v["messages"].as_array().map_or(0, |m| {
            m.iter()
                .filter(|m| m["text"].as_str().is_some_and(|t| t.contains("busy")))
                .count()
        });
        (v["total"].as_u64() == Some(2 * POSTS as u64 + 1) && loaded == 50).then_some(())
    })
    .await;
    assert!(
        found.is_some(),
        "search total after the index's slot moved: {}",
        search(a.http_url(), alpha.clone()).await["total"]
    );
    let fresh = Store::connect("", Arc::new(cluster_settings(&cluster.seeds())))
        .await
        .unwrap();
    eprintln!(
        "index names before: {:?}, after: {:?}",
        store.topology().indexes(base),
        fresh.topology().indexes(base)
    );
    for l in log.lines().iter().filter(|l| l.contains("re-hom")) {
        eprintln!("log: {l}");
    }
}
