//! One worker process: sets up its share of the users, opens its share of the sockets at its
//! share of the ramp, sends on schedule, and counts everything it receives. Single-threaded
//! (one tokio current-thread runtime), so its state lives in one `RefCell`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::args::Config;
use crate::control::{Cmd, ConnectReport, Event, FinalReport, Init, Progress, SentReport};
use crate::frames::{self, Delivery, Received};
use crate::hist::Histogram;
use crate::http;
use crate::outbox::{Outbox, Post};
use crate::sys::now_us;

type Ws = WebSocketStream<TcpStream>;

/// Which senders a receiver has heard from, and which sequence numbers.
#[derive(Default)]
struct Track {
    seen: Vec<u64>,
    /// Highest sequence seen, plus one (0: none yet).
    next: u64,
}

impl Track {
    /// Records `seq`; (is new, is out of order).
    fn record(&mut self, seq: u64) -> (bool, bool) {
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if self.seen.len() <= w {
            self.seen.resize(w + 1, 0);
        }
        if self.seen[w] & (1 << b) != 0 {
            return (false, false);
        }
        self.seen[w] |= 1 << b;
        let ooo = seq + 1 < self.next;
        self.next = self.next.max(seq + 1);
        (true, ooo)
    }
}

struct Sock {
    g: usize,
    room: Option<usize>,
    ready: bool,
    closed: bool,
    unique: u64,
    senders: HashMap<u32, Track>,
    /// Posts waiting for their `posted` (or error), or for their retry after `busy`.
    outbox: Outbox,
    /// Posts due while the socket's window (`--window`) was full: (sequence number, when due,
    /// unix µs), sent in order as answers free the window.
    held: VecDeque<(u64, u64)>,
}

#[derive(Default)]
struct Counters {
    users_ready: u64,
    attempted: u64,
    connected: u64,
    failed: u64,
    settled: u64,
    open: u64,
    sent: u64,
    acked: u64,
    /// `busy` answers: sends the node refused.
    busy: u64,
    /// Posts refused at least once.
    refused: u64,
    /// Sends of refused posts.
    resent: u64,
    /// Posts that waited in the load generator for the socket's window.
    held: u64,
    delivered: u64,
    duplicated: u64,
    out_of_order: u64,
    frames_in: u64,
    first_delivery_us: u64,
    last_delivery_us: u64,
}

struct State {
    cfg: Config,
    run_id: String,
    socks: Vec<Sock>,
    c: Counters,
    latency: Histogram,
    latency_tick: Histogram,
    ack_latency: Histogram,
    /// Each send → its answer (`posted` or `busy`), µs: how long a node makes a client wait to
    /// know what became of one try.
    answer_latency: Histogram,
    fail_reasons: BTreeMap<String, u64>,
    disconnects: BTreeMap<String, u64>,
    post_errors: BTreeMap<String, u64>,
    room_acked: Vec<u64>,
    /// Acked posts each room member should receive (after `expect`).
    expect: Option<Vec<u64>>,
}

type Shared = Rc<RefCell<State>>;

fn emit(ev: &Event) {
    let line = serde_json::to_string(ev).expect("events serialize");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Entry point of `chatnode-loadgen --worker` (started by the coordinator).
pub fn main() -> i32 {
    let stdin = std::io::stdin();
    let mut first = String::new();
    if stdin.lock().read_line(&mut first).is_err() {
        return 1;
    }
    let init: Init = match serde_json::from_str(&first) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("worker: bad init line: {e}");
            return 1;
        }
    };
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Cmd>(&line) {
                Ok(cmd) => {
                    if tx.send(Some(cmd)).is_err() {
                        return;
                    }
                }
                Err(e) => eprintln!("worker: bad command: {e}"),
            }
        }
        let _ = tx.send(None);
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let local = tokio::task::LocalSet::new();
    match local.block_on(&rt, run(init, rx)) {
        Ok(()) => 0,
        Err(e) => {
            emit(&Event::Fatal { error: e });
            1
        }
    }
}

async fn next_cmd(rx: &mut mpsc::UnboundedReceiver<Option<Cmd>>) -> Result<Cmd, String> {
    match rx.recv().await {
        Some(Some(cmd)) => Ok(cmd),
        _ => Err("the coordinator went away".into()),
    }
}

async fn run(init: Init, mut rx: mpsc::UnboundedReceiver<Option<Cmd>>) -> Result<(), String> {
    let cfg = init.config.clone();
    let w = init.index;
    let mine: Vec<usize> = (w..cfg.sockets).step_by(cfg.workers).collect();
    let state: Shared = Rc::new(RefCell::new(State {
        socks: mine
            .iter()
            .map(|&g| Sock {
                g,
                room: cfg.room_of(g),
                ready: false,
                closed: false,
                unique: 0,
                senders: HashMap::new(),
                outbox: Outbox::default(),
                held: VecDeque::new(),
            })
            .collect(),
        room_acked: vec![0; cfg.rooms],
        cfg: cfg.clone(),
        run_id: init.run_id.clone(),
        c: Counters::default(),
        latency: Histogram::default(),
        latency_tick: Histogram::default(),
        ack_latency: Histogram::default(),
        answer_latency: Histogram::default(),
        fail_reasons: BTreeMap::new(),
        disconnects: BTreeMap::new(),
        post_errors: BTreeMap::new(),
        expect: None,
    }));

    // Progress on whole seconds after the run's epoch.
    {
        let state = state.clone();
        let epoch = init.epoch_us;
        tokio::task::spawn_local(async move {
            let mut tick = (now_us().saturating_sub(epoch)) / 1_000_000 + 1;
            loop {
                let at = epoch + tick * 1_000_000;
                tokio::time::sleep(Duration::from_micros(at.saturating_sub(now_us()))).await;
                let p = {
                    let mut s = state.borrow_mut();
                    let latency = s.latency_tick.sparse();
                    s.latency_tick.clear();
                    Progress {
                        tick,
                        users_ready: s.c.users_ready,
                        attempted: s.c.attempted,
                        connected: s.c.connected,
                        failed: s.c.failed,
                        open: s.c.open,
                        sent: s.c.sent,
                        acked: s.c.acked,
                        delivered: s.c.delivered,
                        latency,
                    }
                };
                emit(&Event::Progress(p));
                tick += 1;
            }
        });
    }

    // Users: a token per distinct user of this worker, and room memberships.
    let tokens = setup_users(&state, &mine).await;

    // Sockets, at this worker's share of the ramp.
    let (go_tx, go_rx) = watch::channel::<Option<u64>>(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let src: Option<IpAddr> = match cfg.source_of(w) {
        Some(a) => Some(
            a.parse()
                .map_err(|_| format!("source address `{a}` is not an IP address"))?,
        ),
        None => None,
    };
    let mut targets: HashMap<String, (String, SocketAddr)> = HashMap::new();
    for u in &cfg.urls {
        targets.insert(u.clone(), http::resolve(u)?);
    }
    let per_sec = cfg.ramp / cfg.workers as f64;
    let ramp_start = Instant::now();
    for (li, &g) in mine.iter().enumerate() {
        let at = ramp_start + Duration::from_secs_f64(li as f64 / per_sec);
        tokio::time::sleep_until(at).await;
        let user = cfg.username(g);
        let token = match tokens.get(&user) {
            Some(Ok(t)) => t.clone(),
            other => {
                let e = match other {
                    Some(Err(e)) => e.clone(),
                    _ => "no token".into(),
                };
                let mut s = state.borrow_mut();
                s.c.attempted += 1;
                fail(&mut s, format!("user setup: {e}"));
                continue;
            }
        };
        let target = targets[cfg.url_of(g)].clone();
        tokio::task::spawn_local(socket(
            state.clone(),
            li,
            target,
            src,
            token,
            go_rx.clone(),
            stop_rx.clone(),
        ));
    }
    // Every socket settles (ready or failed) within the connect timeout.
    while state.borrow().c.settled < mine.len() as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let s = state.borrow();
        emit(&Event::Ready(ConnectReport {
            attempted: s.c.attempted,
            succeeded: s.c.connected,
            failed: s.c.failed,
            reasons: s.fail_reasons.clone(),
        }));
    }

    let t0 = match next_cmd(&mut rx).await? {
        Cmd::Go { t0_us } => t0_us,
        Cmd::Stop => return finish(&stop_tx, &state).await,
        other => return Err(format!("expected go, got {other:?}")),
    };
    let _ = go_tx.send(Some(t0));
    let end = t0 + (cfg.duration * 1e6) as u64;
    let deadline = end + (cfg.drain * 1e6) as u64;
    tokio::time::sleep(Duration::from_micros(end.saturating_sub(now_us()))).await;
    // Acks of what was sent.
    while now_us() < deadline
        && state
            .borrow()
            .socks
            .iter()
            .any(|s| !s.closed && s.outbox.open() + s.held.len() > 0)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let s = state.borrow();
        let unacked: u64 = s
            .socks
            .iter()
            .map(|k| (k.outbox.open() + k.held.len()) as u64)
            .sum();
        emit(&Event::Sent(SentReport {
            rooms: s.room_acked.clone(),
            sent: s.c.sent,
            acked: s.c.acked,
            unacked,
            busy: s.c.busy,
            refused: s.c.refused,
            resent: s.c.resent,
            held: s.c.held,
            errors: s.post_errors.clone(),
        }));
    }
    let rooms = match next_cmd(&mut rx).await? {
        Cmd::Expect { rooms } => rooms,
        Cmd::Stop => return finish(&stop_tx, &state).await,
        other => return Err(format!("expected expect, got {other:?}")),
    };
    state.borrow_mut().expect = Some(rooms.clone());
    // Deliveries: every open member has everything its room acked, or the drain time is up.
    let all_in = |s: &State| {
        s.socks.iter().all(|k| match k.room {
            Some(r) if k.ready && !k.closed => k.unique >= rooms[r],
            _ => true,
        })
    };
    while now_us() < deadline && !all_in(&state.borrow()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let s = state.borrow();
        let mut expected = 0;
        let mut lost = 0;
        let mut unexpected = 0;
        for k in &s.socks {
            if let Some(r) = k.room {
                if !k.ready {
                    continue;
                }
                expected += rooms[r];
                lost += rooms[r].saturating_sub(k.unique);
                unexpected += k.unique.saturating_sub(rooms[r]);
            }
        }
        emit(&Event::Final(FinalReport {
            expected,
            received: s.c.delivered,
            lost,
            duplicated: s.c.duplicated,
            out_of_order: s.c.out_of_order,
            unexpected,
            latency: s.latency.sparse(),
            ack_latency: s.ack_latency.sparse(),
            answer_latency: s.answer_latency.sparse(),
            disconnects: s.disconnects.clone(),
            frames_in: s.c.frames_in,
            first_delivery_us: s.c.first_delivery_us,
            last_delivery_us: s.c.last_delivery_us,
        }));
    }
    match next_cmd(&mut rx).await {
        Ok(Cmd::Stop) | Err(_) => finish(&stop_tx, &state).await,
        Ok(other) => Err(format!("expected stop, got {other:?}")),
    }
}

/// Closes every socket (waiting a little for the close handshakes).
async fn finish(stop: &watch::Sender<bool>, state: &Shared) -> Result<(), String> {
    let _ = stop.send(true);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until && state.borrow().c.open > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn fail(s: &mut State, reason: String) {
    s.c.failed += 1;
    s.c.settled += 1;
    *s.fail_reasons.entry(reason).or_default() += 1;
}

/// A user to set up: name, node URL, rooms to join.
type Job = (String, String, Vec<String>);

/// Registers (or signs in) each distinct user of this worker and joins it to its room.
async fn setup_users(state: &Shared, mine: &[usize]) -> HashMap<String, Result<String, String>> {
    let cfg = state.borrow().cfg.clone();
    // user → (node URL, rooms)
    let mut jobs: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for &g in mine {
        let e = jobs
            .entry(cfg.username(g))
            .or_insert_with(|| (cfg.url_of(g).to_string(), Vec::new()));
        if let Some(r) = cfg.room_of(g) {
            let name = cfg.room_name(r);
            if !e.1.contains(&name) {
                e.1.push(name);
            }
        }
    }
    let jobs: Rc<RefCell<VecDeque<Job>>> = Rc::new(RefCell::new(
        jobs.into_iter().map(|(u, (url, r))| (u, url, r)).collect(),
    ));
    let client = match http::client() {
        Ok(c) => c,
        Err(e) => {
            let jobs = jobs.borrow();
            return jobs.iter().map(|j| (j.0.clone(), Err(e.clone()))).collect();
        }
    };
    let results: Rc<RefCell<HashMap<String, Result<String, String>>>> = Default::default();
    let mut tasks = Vec::new();
    for _ in 0..cfg.setup_concurrency {
        let (jobs, results, state, cfg, client) = (
            jobs.clone(),
            results.clone(),
            state.clone(),
            cfg.clone(),
            client.clone(),
        );
        tasks.push(tokio::task::spawn_local(async move {
            loop {
                let Some((user, url, rooms)) = jobs.borrow_mut().pop_front() else {
                    break;
                };
                let r = setup_user(&client, &url, &cfg, &user, &rooms).await;
                state.borrow_mut().c.users_ready += 1;
                results.borrow_mut().insert(user, r);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Rc::try_unwrap(results)
        .map(RefCell::into_inner)
        .unwrap_or_default()
}

async fn setup_user(
    client: &reqwest::Client,
    base: &str,
    cfg: &Config,
    user: &str,
    rooms: &[String],
) -> Result<String, String> {
    let body = serde_json::json!({"username": user, "password": cfg.password});
    let post = |path: String, token: Option<String>, body: Option<serde_json::Value>| async move {
        http::call(
            client,
            base,
            Method::POST,
            &path,
            token.as_deref(),
            body.as_ref(),
        )
        .await
    };
    let (status, text) = post("/api/auth/register".into(), None, Some(body.clone())).await?;
    let (status, text) = if status == 409 {
        post("/api/auth/login".into(), None, Some(body)).await?
    } else {
        (status, text)
    };
    if status != 200 && status != 201 {
        return Err(format!("sign-in: {}", http::error_code(status, &text)));
    }
    let token = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["token"].as_str().map(String::from))
        .ok_or("sign-in: no token in the answer")?;
    for room in rooms {
        let path = format!("/api/channels/{room}/join");
        let (status, text) = post(path, Some(token.clone()), None).await?;
        if status != 204 && status != 200 {
            return Err(format!("join {room}: {}", http::error_code(status, &text)));
        }
    }
    Ok(token)
}

/// A short, stable reason for an I/O or WebSocket failure.
fn reason(e: impl std::fmt::Display) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s.chars().take(80).collect(),
    }
}

async fn open(
    target: &(String, SocketAddr),
    src: Option<IpAddr>,
    token: &str,
) -> Result<Ws, String> {
    let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {}", reason(e)))?;
    if let Some(ip) = src {
        sock.bind(SocketAddr::new(ip, 0))
            .map_err(|e| format!("bind {ip}: {}", reason(e)))?;
    }
    let stream = sock
        .connect(target.1)
        .await
        .map_err(|e| format!("connect: {}", reason(e)))?;
    let _ = stream.set_nodelay(true);
    let url = format!("ws://{}/ws?token={token}", target.0);
    let (ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(r) => {
                format!("upgrade: http {}", r.status().as_u16())
            }
            other => format!("upgrade: {}", reason(other)),
        })?;
    Ok(ws)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Stage {
    Authorizing,
    Subscribing,
    Ready,
}

/// A `post` frame of socket `g`.
fn post_frame(cfg: &Config, run: &str, g: usize, room: usize, seq: u64, sent_us: u64) -> String {
    let text = frames::message_text(run, g, seq, sent_us, cfg.message_bytes);
    frames::post(&cfg.room_name(room), text, frames::client_id(run, g, seq))
}

/// One socket from connect to close.
async fn socket(
    state: Shared,
    li: usize,
    target: (String, SocketAddr),
    src: Option<IpAddr>,
    token: String,
    mut go: watch::Receiver<Option<u64>>,
    mut stop: watch::Receiver<bool>,
) {
    let (cfg, run, g, room) = {
        let mut s = state.borrow_mut();
        s.c.attempted += 1;
        (
            s.cfg.clone(),
            s.run_id.clone(),
            s.socks[li].g,
            s.socks[li].room,
        )
    };
    let deadline = Instant::now() + Duration::from_secs_f64(cfg.connect_timeout);
    let mut ws = match tokio::time::timeout_at(deadline, open(&target, src, &token)).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => return fail(&mut state.borrow_mut(), e),
        Err(_) => return fail(&mut state.borrow_mut(), "timeout: connecting".into()),
    };
    drop(token);
    let mut stage = Stage::Authorizing;
    // Sending schedule: every room member sends at rate / senders, offsets spread evenly.
    let senders = cfg.in_rooms().max(1) as f64;
    let period_us = if cfg.rate > 0.0 {
        senders / cfg.rate * 1e6
    } else {
        f64::INFINITY
    };
    let offset_us = if cfg.rate > 0.0 {
        g as f64 / cfg.rate * 1e6
    } else {
        0.0
    };
    let mut t0: Option<u64> = None;
    let mut seq = 0u64;
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    let mut next_send = far;
    let mut sending = false;
    let end = |t0: u64| t0 + (cfg.duration * 1e6) as u64;
    // Refused posts go out again until the drain time is up.
    let last_retry = |t0: u64| end(t0) + (cfg.drain * 1e6) as u64;

    let why: String = loop {
        let retry_at = state.borrow().socks[li].outbox.next_retry_us();
        let retrying = retry_at.is_some() && t0.is_some_and(|t| now_us() < last_retry(t));
        let next_retry =
            Instant::now() + Duration::from_micros(retry_at.unwrap_or(0).saturating_sub(now_us()));
        tokio::select! {
            biased;
            _ = stop.changed() => {
                let _ = ws.close(None).await;
                break String::new();
            }
            _ = tokio::time::sleep_until(deadline), if stage != Stage::Ready => {
                let mut s = state.borrow_mut();
                fail(&mut s, format!("timeout: {}", match stage {
                    Stage::Authorizing => "waiting for authorized",
                    _ => "waiting for subscribed",
                }));
                return;
            }
            r = go.changed(), if t0.is_none() => {
                if r.is_err() { continue; }
                t0 = *go.borrow();
                if let (Some(t), Some(_)) = (t0, room) {
                    if cfg.rate > 0.0 && stage == Stage::Ready {
                        sending = true;
                        let first = t + offset_us as u64;
                        next_send = Instant::now() + Duration::from_micros(first.saturating_sub(now_us()));
                    }
                }
            }
            _ = tokio::time::sleep_until(next_send), if sending => {
                let t = t0.unwrap_or(0);
                let due = t + (offset_us + seq as f64 * period_us) as u64;
                if due >= end(t) {
                    sending = false;
                    continue;
                }
                let sent_us = now_us();
                let frame = {
                    let mut s = state.borrow_mut();
                    let sock = &mut s.socks[li];
                    if cfg.window > 0 && (sock.outbox.open() + sock.held.len() >= cfg.window) {
                        // The window is full: the post waits its turn here, due since now.
                        sock.held.push_back((seq, sent_us));
                        s.c.held += 1;
                        None
                    } else {
                        sock.outbox.sent(Post { seq, first_sent_us: sent_us, last_sent_us: sent_us, sends: 1 });
                        s.c.sent += 1;
                        Some(post_frame(&cfg, &run, g, room.unwrap_or(0), seq, sent_us))
                    }
                };
                seq += 1;
                let next_due = t + (offset_us + seq as f64 * period_us) as u64;
                next_send = Instant::now() + Duration::from_micros(next_due.saturating_sub(now_us()));
                if let Some(frame) = frame {
                    if let Err(e) = ws.send(Message::Text(frame)).await {
                        break format!("send: {}", reason(e));
                    }
                }
            }
            _ = tokio::time::sleep_until(next_retry), if retrying => {
                let frames: Vec<String> = {
                    let mut s = state.borrow_mut();
                    let s = &mut *s;
                    let mut frames = Vec::new();
                    while let Some(p) = s.socks[li].outbox.due(now_us()) {
                        frames.push(post_frame(&cfg, &run, g, room.unwrap_or(0), p.seq, p.first_sent_us));
                        s.socks[li].outbox.sent(p);
                        s.c.resent += 1;
                    }
                    frames
                };
                let mut failed = None;
                for frame in frames {
                    if let Err(e) = ws.send(Message::Text(frame)).await {
                        failed = Some(format!("send: {}", reason(e)));
                        break;
                    }
                }
                if let Some(why) = failed {
                    break why;
                }
            }
            m = ws.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(c))) => break match c {
                        Some(c) => format!("closed {} {}", u16::from(c.code), c.reason),
                        None => "closed".into(),
                    },
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break reason(e),
                    None => break "eof".into(),
                };
                match on_frame(&state, li, &run, room, &mut stage, &text) {
                    After::Nothing => {
                        // Answers free the window: held posts go out, oldest first.
                        let frames = release_held(&state, li, cfg.window, |seq, due| {
                            post_frame(&cfg, &run, g, room.unwrap_or(0), seq, due)
                        });
                        let mut failed = None;
                        for frame in frames {
                            if let Err(e) = ws.send(Message::Text(frame)).await {
                                failed = Some(format!("send: {}", reason(e)));
                                break;
                            }
                        }
                        if let Some(why) = failed {
                            break why;
                        }
                    }
                    After::Subscribe(r) => {
                        let sub = frames::subscribe(&cfg.room_name(r));
                        if let Err(e) = ws.send(Message::Text(sub)).await {
                            fail(&mut state.borrow_mut(), format!("send: {}", reason(e)));
                            return;
                        }
                    }
                    After::Refused(code) => {
                        fail(&mut state.borrow_mut(), format!("refused: {code}"));
                        let _ = ws.close(None).await;
                        return;
                    }
                }
            }
        }
    };
    let mut s = state.borrow_mut();
    if stage != Stage::Ready {
        fail(&mut s, format!("before ready: {why}"));
        return;
    }
    s.socks[li].closed = true;
    s.c.open = s.c.open.saturating_sub(1);
    if !why.is_empty() {
        *s.disconnects.entry(why).or_default() += 1;
    }
}

/// Takes the held posts of socket `li` that its window (`--window`) now has room for, in order,
/// counted as sent; their text is stamped with when they were due, so their latency includes
/// the wait. Returns their frames, made by `frame(seq, due_us)`.
fn release_held(
    state: &Shared,
    li: usize,
    window: usize,
    frame: impl Fn(u64, u64) -> String,
) -> Vec<String> {
    let mut s = state.borrow_mut();
    let s = &mut *s;
    let sock = &mut s.socks[li];
    let mut frames = Vec::new();
    while !sock.held.is_empty() && sock.outbox.open() < window {
        let Some((seq, due)) = sock.held.pop_front() else {
            break;
        };
        let now = now_us();
        sock.outbox.sent(Post {
            seq,
            first_sent_us: due,
            last_sent_us: now,
            sends: 1,
        });
        s.c.sent += 1;
        frames.push(frame(seq, due));
    }
    frames
}

/// What the socket loop does after a frame was counted.
enum After {
    Nothing,
    Subscribe(usize),
    Refused(String),
}

/// Counts one text frame and advances the socket's stage.
fn on_frame(
    state: &Shared,
    li: usize,
    run: &str,
    room: Option<usize>,
    stage: &mut Stage,
    text: &str,
) -> After {
    let mut s = state.borrow_mut();
    let st = &mut *s;
    st.c.frames_in += 1;
    match frames::parse(text) {
        Received::Delivery(Delivery {
            run: r,
            sender,
            seq,
            sent_us,
        }) => {
            if r != run {
                return After::Nothing;
            }
            let now = now_us();
            let (new, ooo) = st.socks[li].senders.entry(sender).or_default().record(seq);
            if !new {
                st.c.duplicated += 1;
                return After::Nothing;
            }
            st.socks[li].unique += 1;
            st.c.delivered += 1;
            if ooo {
                st.c.out_of_order += 1;
            }
            let lat = now.saturating_sub(sent_us);
            st.latency.record(lat);
            st.latency_tick.record(lat);
            if st.c.first_delivery_us == 0 {
                st.c.first_delivery_us = now;
            }
            st.c.last_delivery_us = now;
        }
        Received::Posted(q) => {
            let acked = st.socks[li].outbox.posted(q);
            if acked.unanswered > 0 {
                // Earlier posts that got no answer of their own.
                *st.post_errors.entry("no answer".into()).or_default() += acked.unanswered;
            }
            if let Some(post) = acked.post {
                st.c.acked += 1;
                st.answer_latency
                    .record(now_us().saturating_sub(post.last_sent_us));
                // From the first send: a refused post's wait counts.
                st.ack_latency
                    .record(now_us().saturating_sub(post.first_sent_us));
                if let Some(r) = room {
                    st.room_acked[r] += 1;
                }
            }
        }
        Received::Busy {
            seq,
            retry_after_ms,
        } => {
            if *stage != Stage::Ready {
                return After::Refused("busy".into());
            }
            let now = now_us();
            if let Some(post) = st.socks[li].outbox.refused(seq, now, retry_after_ms) {
                st.c.busy += 1;
                st.answer_latency
                    .record(now.saturating_sub(post.last_sent_us));
                if post.sends == 1 {
                    st.c.refused += 1;
                }
            }
        }
        Received::Error { code, seq } => {
            if *stage != Stage::Ready {
                return After::Refused(code);
            }
            if st.socks[li].outbox.failed(seq).is_some() {
                *st.post_errors.entry(code).or_default() += 1;
            }
        }
        Received::Authorized if *stage == Stage::Authorizing => match room {
            Some(r) => {
                *stage = Stage::Subscribing;
                return After::Subscribe(r);
            }
            None => {
                *stage = Stage::Ready;
                ready(st, li);
            }
        },
        Received::Subscribed if *stage == Stage::Subscribing => {
            *stage = Stage::Ready;
            ready(st, li);
        }
        _ => {}
    }
    After::Nothing
}

fn ready(s: &mut State, li: usize) {
    s.socks[li].ready = true;
    s.c.connected += 1;
    s.c.settled += 1;
    s.c.open += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_duplicates_and_order() {
        let mut t = Track::default();
        assert_eq!(t.record(0), (true, false));
        assert_eq!(t.record(2), (true, false));
        assert_eq!(t.record(1), (true, true));
        assert_eq!(t.record(2), (false, false));
        assert_eq!(t.record(200), (true, false));
    }

    #[test]
    fn post_frames_are_json_of_the_right_size() {
        let cfg = crate::args::tests::parse_ok("--rooms 1");
        let f = post_frame(&cfg, "ab", 5, 0, 9, 123);
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["post"]["channel"], "lg-room-0");
        assert_eq!(v["post"]["text"].as_str().unwrap().len(), 64);
        assert_eq!(v["post"]["client_id"], "ab.5.9");
    }
}
