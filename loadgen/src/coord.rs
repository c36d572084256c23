//! The coordinator: prepares the rooms, starts the worker processes, walks them through the
//! phases (setup and ramp, go, acks, expected deliveries, stop), prints progress, and writes the
//! JSON summary and the picture.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::args::Config;
use crate::control::{Cmd, ConnectReport, Event, FinalReport, Init, Progress, SentReport};
use crate::hist::Histogram;
use crate::http;
use crate::svg;
use crate::sys::{self, now_us};

struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    alive: bool,
    last: Progress,
    ready: Option<ConnectReport>,
    sent: Option<SentReport>,
    fin: Option<FinalReport>,
}

impl Worker {
    fn send(&mut self, cmd: &Cmd) {
        if let Some(stdin) = self.stdin.as_mut() {
            let line = serde_json::to_string(cmd).expect("commands serialize");
            if writeln!(stdin, "{line}")
                .and_then(|_| stdin.flush())
                .is_err()
            {
                self.alive = false;
            }
        }
    }
}

/// One second of the run, all workers together.
#[derive(Default, Clone)]
pub struct Bin {
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub connected: u64,
    pub open: Vec<Option<u64>>,
    pub latency: Histogram,
}

#[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
enum Phase {
    Setup,
    Run,
    Drain,
    Stopping,
}

enum Line {
    Event(Box<Event>),
    Eof,
}

fn ms(us: u64) -> f64 {
    (us as f64 / 1000.0 * 1000.0).round() / 1000.0
}

fn latency_json(h: &Histogram) -> Value {
    json!({
        "count": h.total,
        "mean": ms(h.mean() as u64),
        "p50": ms(h.quantile(0.50)),
        "p90": ms(h.quantile(0.90)),
        "p99": ms(h.quantile(0.99)),
        "p999": ms(h.quantile(0.999)),
        "max": ms(h.max),
    })
}

fn add_map(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

fn snapshot(cfg: &Config, workers: &[u32]) -> Value {
    let nodes: Vec<Value> = cfg
        .metrics_urls
        .iter()
        .map(|u| match sys::scrape(u) {
            Ok(m) => json!({"url": u, "metrics": m}),
            Err(e) => json!({"url": u, "error": e}),
        })
        .collect();
    let procs: BTreeMap<String, Value> = cfg
        .pids
        .iter()
        .map(|(name, pid)| {
            let v = match sys::proc_sample(*pid) {
                Some(s) => json!(s),
                None => Value::Null,
            };
            (name.clone(), v)
        })
        .collect();
    let loadgen: f64 = workers
        .iter()
        .filter_map(|p| sys::proc_sample(*p))
        .map(|s| s.cpu_secs)
        .sum();
    json!({
        "at": sys::rfc3339(now_us() / 1_000_000),
        "unix_ms": now_us() / 1000,
        "nodes": nodes,
        "processes": procs,
        "loadgen_workers_cpu_secs": loadgen,
        "machine_busy_cpu_secs": sys::machine_busy_secs(),
    })
}

/// Creates the rooms (a `<user-prefix>-admin` user creates them; existing ones are fine).
fn prepare_rooms(cfg: &Config) -> Result<(), String> {
    if cfg.rooms == 0 {
        return Ok(());
    }
    let base = &cfg.urls[0];
    let body = json!({"username": format!("{}-admin", cfg.user_prefix), "password": cfg.password});
    let post = |path: &str, token: Option<&str>, body: &Value| {
        http::call_blocking(base, Method::POST, path, token, Some(body))
    };
    let (mut status, mut text) = post("/api/auth/register", None, &body)?;
    if status == 409 {
        (status, text) = post("/api/auth/login", None, &body)?;
    }
    if status != 200 && status != 201 {
        return Err(format!(
            "admin sign-in: {}",
            http::error_code(status, &text)
        ));
    }
    let token = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["token"].as_str().map(String::from))
        .ok_or("admin sign-in: no token")?;
    for r in 0..cfg.rooms {
        let name = cfg.room_name(r);
        let (status, text) = post("/api/channels", Some(&token), &json!({"name": name}))?;
        if status != 201 && status != 409 {
            return Err(format!(
                "create room {name}: {}",
                http::error_code(status, &text)
            ));
        }
    }
    Ok(())
}

fn run_id() -> String {
    let t = now_us() ^ ((std::process::id() as u64) << 40);
    format!(
        "{:08x}",
        (t.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
    )
}

fn human(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if n >= 1e4 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// Runs a whole load test; the process exit code.
pub fn main(cfg: Config) -> i32 {
    match run(&cfg) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chatnode-loadgen: {e}");
            1
        }
    }
}

fn run(cfg: &Config) -> Result<i32, String> {
    let started = Instant::now();
    let epoch_us = now_us();
    let run_id = run_id();
    let tty = std::io::stderr().is_terminal();
    let say = |s: &str| {
        if !cfg.quiet {
            eprintln!("{s}");
        }
    };
    say(&format!(
        "chatnode-loadgen run {run_id}: {} sockets over {} node(s), {} workers, {} rooms x {} members, {} msg/s for {} s",
        cfg.sockets,
        cfg.urls.len(),
        cfg.workers,
        cfg.rooms,
        cfg.members,
        cfg.rate,
        cfg.duration
    ));
    let before = snapshot(cfg, &[]);
    prepare_rooms(cfg)?;

    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let (tx, rx) = mpsc::channel::<(usize, Line)>();
    let mut workers = Vec::new();
    for w in 0..cfg.workers {
        let mut child = Command::new(&exe)
            .arg("--worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting worker {w}: {e}"))?;
        let mut stdin = child.stdin.take();
        let init = Init {
            index: w,
            run_id: run_id.clone(),
            epoch_us,
            config: cfg.clone(),
        };
        if let Some(s) = stdin.as_mut() {
            let _ = writeln!(
                s,
                "{}",
                serde_json::to_string(&init).expect("init serializes")
            );
            let _ = s.flush();
        }
        let stdout = child.stdout.take().expect("piped stdout");
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Event>(&line) {
                    Ok(ev) => {
                        if tx.send((w, Line::Event(Box::new(ev)))).is_err() {
                            return;
                        }
                    }
                    Err(e) => eprintln!("worker {w}: unreadable line ({e}): {line}"),
                }
            }
            let _ = tx.send((w, Line::Eof));
        });
        workers.push(Worker {
            child,
            stdin,
            alive: true,
            last: Progress::default(),
            ready: None,
            sent: None,
            fin: None,
        });
    }
    drop(tx);
    let pids: Vec<u32> = workers.iter().map(|w| w.child.id()).collect();

    let mut bins: Vec<Bin> = Vec::new();
    let mut phase = Phase::Setup;
    let mut fatal: Vec<String> = Vec::new();
    let mut ready_snapshot = Value::Null;
    let mut after_snapshot = Value::Null;
    let mut t_ready = None;
    let mut t0_us = 0u64;
    let mut t_sent = None;
    let mut t_final = None;
    let mut last_print = Instant::now();
    let setup_guard =
        Duration::from_secs_f64(900.0 + cfg.sockets as f64 / cfg.ramp + cfg.connect_timeout);
    let run_guard = Duration::from_secs_f64(cfg.duration + cfg.drain + 120.0);

    loop {
        let got = rx.recv_timeout(Duration::from_millis(250));
        match got {
            Ok((w, Line::Event(ev))) => match *ev {
                Event::Progress(p) => {
                    let k = p.tick as usize;
                    if bins.len() <= k {
                        bins.resize(k + 1, Bin::default());
                    }
                    let last = &workers[w].last;
                    let b = &mut bins[k];
                    b.sent += p.sent.saturating_sub(last.sent);
                    b.acked += p.acked.saturating_sub(last.acked);
                    b.delivered += p.delivered.saturating_sub(last.delivered);
                    b.connected += p.connected.saturating_sub(last.connected);
                    if b.open.len() < cfg.workers {
                        b.open.resize(cfg.workers, None);
                    }
                    b.open[w] = Some(p.open);
                    b.latency.merge_sparse(&p.latency);
                    workers[w].last = p;
                }
                Event::Ready(r) => workers[w].ready = Some(r),
                Event::Sent(s) => workers[w].sent = Some(s),
                Event::Final(f) => workers[w].fin = Some(f),
                Event::Fatal { error } => {
                    fatal.push(format!("worker {w}: {error}"));
                    workers[w].alive = false;
                }
            },
            Ok((w, Line::Eof)) => {
                if workers[w].alive && phase < Phase::Stopping {
                    fatal.push(format!("worker {w} exited early"));
                }
                workers[w].alive = false;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let alive: Vec<usize> = (0..workers.len()).filter(|&w| workers[w].alive).collect();
        if alive.is_empty() {
            break;
        }
        // Phase changes.
        match phase {
            Phase::Setup if alive.iter().all(|&w| workers[w].ready.is_some()) => {
                t_ready = Some(started.elapsed());
                ready_snapshot = snapshot(cfg, &pids);
                t0_us = now_us() + 300_000;
                for &w in &alive {
                    workers[w].send(&Cmd::Go { t0_us });
                }
                phase = Phase::Run;
            }
            Phase::Setup if started.elapsed() > setup_guard => {
                fatal.push("setup took too long".into());
                break;
            }
            Phase::Run if alive.iter().all(|&w| workers[w].sent.is_some()) => {
                t_sent = Some(now_us());
                let mut rooms = vec![0u64; cfg.rooms];
                for w in &workers {
                    if let Some(s) = &w.sent {
                        for (a, b) in rooms.iter_mut().zip(&s.rooms) {
                            *a += b;
                        }
                    }
                }
                for &w in &alive {
                    workers[w].send(&Cmd::Expect {
                        rooms: rooms.clone(),
                    });
                }
                phase = Phase::Drain;
            }
            Phase::Drain if alive.iter().all(|&w| workers[w].fin.is_some()) => {
                t_final = Some(now_us());
                after_snapshot = snapshot(cfg, &pids);
                for &w in &alive {
                    workers[w].send(&Cmd::Stop);
                }
                phase = Phase::Stopping;
            }
            Phase::Run | Phase::Drain if now_us() > t0_us + run_guard.as_micros() as u64 => {
                fatal.push("a worker did not finish in time".into());
                break;
            }
            _ => {}
        }
        if phase == Phase::Stopping {
            for &w in &alive {
                workers[w].stdin = None;
            }
        }
        // Progress line.
        let every = if tty { 250 } else { 2000 };
        if !cfg.quiet && last_print.elapsed() >= Duration::from_millis(every) {
            last_print = Instant::now();
            let line = progress_line(cfg, phase, &workers, &bins, t0_us);
            if tty {
                eprint!("\r\x1b[2K{line}");
            } else {
                eprintln!("{line}");
            }
        }
    }
    if tty && !cfg.quiet {
        eprintln!();
    }
    // Workers exit by themselves after `stop`; give them a moment, then end them.
    for w in workers.iter_mut() {
        w.stdin = None;
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            match w.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    let _ = w.child.kill();
                    let _ = w.child.wait();
                    break;
                }
            }
        }
    }
    if after_snapshot.is_null() {
        after_snapshot = snapshot(cfg, &[]);
    }

    // Totals.
    let mut connects = ConnectReport::default();
    let mut sent = SentReport::default();
    let mut fin = FinalReport::default();
    let mut latency = Histogram::default();
    let mut ack_latency = Histogram::default();
    let mut answer_latency = Histogram::default();
    let mut first_delivery = u64::MAX;
    for w in &workers {
        if let Some(r) = &w.ready {
            connects.attempted += r.attempted;
            connects.succeeded += r.succeeded;
            connects.failed += r.failed;
            add_map(&mut connects.reasons, &r.reasons);
        } else {
            connects.attempted += w.last.attempted;
            connects.succeeded += w.last.connected;
            connects.failed += w.last.failed;
        }
        if let Some(s) = &w.sent {
            sent.sent += s.sent;
            sent.acked += s.acked;
            sent.unacked += s.unacked;
            sent.busy += s.busy;
            sent.refused += s.refused;
            sent.resent += s.resent;
            sent.held += s.held;
            add_map(&mut sent.errors, &s.errors);
        }
        if let Some(f) = &w.fin {
            fin.expected += f.expected;
            fin.received += f.received;
            fin.lost += f.lost;
            fin.duplicated += f.duplicated;
            fin.out_of_order += f.out_of_order;
            fin.unexpected += f.unexpected;
            fin.frames_in += f.frames_in;
            add_map(&mut fin.disconnects, &f.disconnects);
            latency.merge_sparse(&f.latency);
            ack_latency.merge_sparse(&f.ack_latency);
            answer_latency.merge_sparse(&f.answer_latency);
            if f.first_delivery_us > 0 {
                first_delivery = first_delivery.min(f.first_delivery_us);
            }
            fin.last_delivery_us = fin.last_delivery_us.max(f.last_delivery_us);
        }
    }
    let send_secs = cfg.duration.max(1e-3);
    let delivery_span = if fin.last_delivery_us > t0_us {
        ((fin.last_delivery_us - t0_us) as f64 / 1e6).max(send_secs)
    } else {
        send_secs
    };
    let timeseries: Vec<Value> = series(&bins, epoch_us, t0_us)
        .into_iter()
        .map(|p| {
            json!({
                "t": p.t, "open": p.open, "connected_per_sec": p.connected, "sent_per_sec": p.sent,
                "acked_per_sec": p.acked, "delivered_per_sec": p.delivered,
                "p50_ms": ms(p.p50), "p99_ms": ms(p.p99), "max_ms": ms(p.max),
            })
        })
        .collect();
    let problems = connects.failed
        + fin.lost
        + fin.duplicated
        + fin.out_of_order
        + fin.disconnects.values().sum::<u64>()
        + fatal.len() as u64;
    let summary = json!({
        "tool": "chatnode-loadgen",
        "format": 1,
        "run_id": run_id,
        "label": cfg.label,
        "started_at": sys::rfc3339(epoch_us / 1_000_000),
        "config": {
            "urls": cfg.urls, "sockets": cfg.sockets, "users": cfg.users, "workers": cfg.workers,
            "ramp_per_sec": cfg.ramp, "rooms": cfg.rooms, "members_per_room": cfg.members,
            "rate_per_sec": cfg.rate, "duration_secs": cfg.duration, "drain_secs": cfg.drain,
            "message_bytes": cfg.message_bytes, "source_addrs": cfg.source_addrs,
        },
        "connects": {
            "attempted": connects.attempted, "succeeded": connects.succeeded,
            "failed": connects.failed, "failure_reasons": connects.reasons,
        },
        "disconnects": {
            "total": fin.disconnects.values().sum::<u64>(), "reasons": fin.disconnects,
        },
        "messages": {
            "sent": sent.sent, "acked": sent.acked, "unacked": sent.unacked,
            "refused": sent.refused, "busy": sent.busy, "resent": sent.resent,
            "held": sent.held,
            "errors": sent.errors,
            "in_per_sec": (sent.acked as f64 / send_secs).round(),
        },
        "deliveries": {
            "expected": fin.expected, "received": fin.received, "lost": fin.lost,
            "duplicated": fin.duplicated, "out_of_order": fin.out_of_order,
            "unexpected": fin.unexpected,
            "out_per_sec": (fin.received as f64 / delivery_span).round(),
            "span_secs": (delivery_span * 1000.0).round() / 1000.0,
        },
        "latency_ms": latency_json(&latency),
        "ack_latency_ms": latency_json(&ack_latency),
        "answer_latency_ms": latency_json(&answer_latency),
        "frames_in": fin.frames_in,
        "phases": {
            "setup_and_ramp_secs": t_ready.map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
            "drain_secs": match (t_sent, t_final) {
                (Some(_), Some(f)) => json!(((f as f64 - t0_us as f64) / 1e6 - cfg.duration).max(0.0)),
                _ => Value::Null,
            },
            "total_secs": (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        },
        "server": {"before": before, "ready": ready_snapshot, "after": after_snapshot},
        "loadgen_cpu_secs": (sys::children_cpu_secs() * 100.0).round() / 100.0,
        "timeseries": timeseries,
        "errors": fatal,
        "ok": problems == 0,
    });
    let text = serde_json::to_string_pretty(&summary).expect("summary serializes");
    println!("{text}");
    if let Some(path) = &cfg.json {
        std::fs::write(path, format!("{text}\n")).map_err(|e| format!("{path}: {e}"))?;
    }
    if let Some(path) = &cfg.svg {
        let title = format!(
            "chatnode-loadgen {}{} · {} sockets · {} rooms × {} · {} msg/s × {} s",
            if cfg.label.is_empty() { "" } else { &cfg.label },
            if cfg.label.is_empty() {
                run_id.clone()
            } else {
                format!(" ({run_id})")
            },
            cfg.sockets,
            cfg.rooms,
            cfg.members,
            cfg.rate,
            cfg.duration
        );
        let pts = series(&bins, epoch_us, t0_us);
        std::fs::write(path, svg::render(&title, &latency, &pts))
            .map_err(|e| format!("{path}: {e}"))?;
    }
    if !cfg.quiet {
        // Refusals only when there were any, so runs without them read as before.
        let mut refused = if sent.busy > 0 {
            format!(
                " refused {} ({} busy, {} re-sent)",
                sent.refused, sent.busy, sent.resent
            )
        } else {
            String::new()
        };
        if sent.held > 0 {
            refused.push_str(&format!(" held {} for the window", sent.held));
        }
        eprintln!(
            "connects {}/{} ({} failed) · sent {} acked {}{} · deliveries {}/{} lost {} dup {} ooo {} · {}/s in, {}/s out · p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} ms",
            connects.succeeded,
            connects.attempted,
            connects.failed,
            sent.sent,
            sent.acked,
            refused,
            fin.received,
            fin.expected,
            fin.lost,
            fin.duplicated,
            fin.out_of_order,
            human(sent.acked as f64 / send_secs),
            human(fin.received as f64 / delivery_span),
            ms(latency.quantile(0.5)),
            ms(latency.quantile(0.99)),
            ms(latency.quantile(0.999)),
            ms(latency.max),
        );
        for e in &fatal {
            eprintln!("error: {e}");
        }
    }
    if !fatal.is_empty() {
        return Ok(1);
    }
    Ok(if cfg.fail_on_loss && problems > 0 {
        2
    } else {
        0
    })
}

/// One point of the time series.
pub struct Point {
    /// Seconds relative to go (negative during setup and ramp).
    pub t: i64,
    pub open: u64,
    pub connected: u64,
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

fn series(bins: &[Bin], epoch_us: u64, t0_us: u64) -> Vec<Point> {
    let go_tick = if t0_us > epoch_us {
        ((t0_us - epoch_us) as f64 / 1e6).ceil() as i64
    } else {
        0
    };
    let mut open_by_worker: Vec<u64> = Vec::new();
    bins.iter()
        .enumerate()
        .skip(1)
        .map(|(k, b)| {
            if open_by_worker.len() < b.open.len() {
                open_by_worker.resize(b.open.len(), 0);
            }
            for (w, o) in b.open.iter().enumerate() {
                if let Some(o) = o {
                    open_by_worker[w] = *o;
                }
            }
            Point {
                t: k as i64 - go_tick,
                open: open_by_worker.iter().sum(),
                connected: b.connected,
                sent: b.sent,
                acked: b.acked,
                delivered: b.delivered,
                p50: b.latency.quantile(0.5),
                p99: b.latency.quantile(0.99),
                max: b.latency.max,
            }
        })
        .collect()
}

fn progress_line(
    cfg: &Config,
    phase: Phase,
    workers: &[Worker],
    bins: &[Bin],
    t0_us: u64,
) -> String {
    let sum = |f: fn(&Progress) -> u64| workers.iter().map(|w| f(&w.last)).sum::<u64>();
    let (users, attempted, connected, failed, open) = (
        sum(|p| p.users_ready),
        sum(|p| p.attempted),
        sum(|p| p.connected),
        sum(|p| p.failed),
        sum(|p| p.open),
    );
    let (sent, delivered) = (sum(|p| p.sent), sum(|p| p.delivered));
    let bar = |frac: f64| {
        let n = (frac.clamp(0.0, 1.0) * 20.0).round() as usize;
        format!("[{}{}]", "#".repeat(n), ".".repeat(20 - n))
    };
    // The last complete second.
    let last = bins.iter().rev().nth(1);
    let rate = |f: fn(&Bin) -> u64| last.map(f).unwrap_or(0) as f64;
    let p99 = last.map(|b| b.latency.quantile(0.99)).unwrap_or(0);
    match phase {
        Phase::Setup => format!(
            "setup {} users {}/{} · sockets {}/{} open {} failed {} (attempted {})",
            bar((connected + failed) as f64 / cfg.sockets as f64),
            users,
            cfg.users,
            connected,
            cfg.sockets,
            open,
            failed,
            attempted
        ),
        _ => {
            let el = (now_us().saturating_sub(t0_us)) as f64 / 1e6;
            format!(
                "{} {} {:.0}/{:.0}s · open {} · sent {} ({}/s) · delivered {} ({}/s) · p99 {:.1} ms",
                match phase {
                    Phase::Run => "run  ",
                    Phase::Drain => "drain",
                    _ => "stop ",
                },
                bar(el / cfg.duration.max(1e-3)),
                el.min(cfg.duration + cfg.drain),
                cfg.duration,
                open,
                human(sent as f64),
                human(rate(|b| b.sent)),
                human(delivered as f64),
                human(rate(|b| b.delivered)),
                p99 as f64 / 1000.0
            )
        }
    }
}
