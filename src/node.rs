//! Starting and stopping a node: Redis (embedded or configured), the actors, the HTTP server,
//! and the graceful shutdown that closes sockets with 1001 before Redis goes away.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, AsyncContext, Context};
use actix_web::{web, App as WebApp, HttpServer};
use tokio::sync::oneshot;

use crate::actors::bridge::Bridge;
use crate::actors::hub::{CloseAll, Hub};
use crate::actors::presence::Presence;
use crate::app::App;
use crate::metrics::Metrics;
use crate::redis_server::RedisProcess;
use crate::settings::Settings;
use crate::store::Store;

/// A started node, as `start` returns it.
struct Started {
    addr: SocketAddr,
    server: actix_web::dev::Server,
    app: web::Data<App>,
    embedded: Option<RedisProcess>,
    /// The `/metrics` listener, when `http.metrics_port` gives it a port of its own.
    metrics_server: Option<actix_web::dev::Server>,
}

async fn start(settings: Settings) -> Result<Started, String> {
    let settings = Arc::new(settings);
    let (url, embedded) = if settings.redis.url.is_empty() && !settings.redis.is_cluster() {
        let opts = crate::redis_server::embedded_options(&settings)?;
        let process = RedisProcess::start(&opts).await?;
        log::info!(
            "embedded redis-server on port {} (data in {}, search module {})",
            process.port(),
            settings.redis.data_dir.display(),
            if process.module_loaded {
                "loaded"
            } else {
                "not found"
            }
        );
        (process.url(), Some(process))
    } else {
        (settings.redis.url.clone(), None)
    };
    if settings.redis.is_cluster() && !settings.redis.url.is_empty() {
        log::warn!("redis.cluster_nodes is set: cluster mode; redis.url is not used");
    }
    let store = Store::connect(&url, settings.clone()).await?;
    match store.search {
        Some(v) => log::info!("search: {}", v.label()),
        None => log::warn!("search: the RediSearch module is not loaded; search answers 503"),
    }
    crate::store::setup::prepare(&store)
        .await
        .map_err(|e| format!("preparing Redis: {e}"))?;
    crate::store::setup::spawn_backfill(store.clone());
    crate::store::retention::spawn_sweeper(store.clone());

    let metrics = Arc::new(Metrics::default());
    let (hub, presence) = start_actors(&store, &metrics);
    let (voice, _transcriber) = crate::voice::transcriber::start(&store, &settings);

    let app = web::Data::new(App {
        store,
        settings: settings.clone(),
        metrics,
        hub,
        presence,
        started: Instant::now(),
        stopping: AtomicBool::new(false),
        voice,
        posts_in_flight: crate::app::PostSlots::new(settings.ws.max_inflight_per_node),
        decodes: crate::app::PostSlots::new(settings.voice.max_concurrent_decodes),
    });
    let data = app.clone();
    let routes_settings = settings.clone();
    let server = HttpServer::new(move || {
        let s = routes_settings.clone();
        WebApp::new()
            .app_data(data.clone())
            .configure(move |cfg| crate::http::configure(cfg, &s))
    })
    .disable_signals()
    // No Nagle delay on sockets: a frame written right after another (a post's `posted` after
    // its own delivery) otherwise waited for the client's delayed ACK, about 40 ms.
    .tcp_nodelay(true)
    .shutdown_timeout(settings.shutdown.grace_secs)
    .bind((settings.http.host.as_str(), settings.http.port))
    .map_err(|e| {
        format!(
            "cannot listen on {}:{}: {e}",
            settings.http.host, settings.http.port
        )
    })?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| "the listener has no address".to_string())?;
    let metrics_server = metrics_listener(&settings, &app)?;
    Ok(Started {
        addr,
        server: server.run(),
        app,
        embedded,
        metrics_server,
    })
}

/// A listener serving only `/metrics` on `http.metrics_port`, or none when that is 0.
fn metrics_listener(
    settings: &Settings,
    app: &web::Data<App>,
) -> Result<Option<actix_web::dev::Server>, String> {
    let port = settings.http.metrics_port;
    if port == 0 {
        return Ok(None);
    }
    let data = app.clone();
    let server = HttpServer::new(move || {
        WebApp::new()
            .app_data(data.clone())
            .configure(crate::http::configure_metrics_listener)
    })
    .workers(1)
    .disable_signals()
    .bind((settings.http.host.as_str(), port))
    .map_err(|e| format!("cannot listen on {}:{port}: {e}", settings.http.host))?;
    log::info!("metrics on http://{}:{port}/metrics", settings.http.host);
    Ok(Some(server.run()))
}

/// Starts the node's long-lived actors: the bridge, the presence tracker and the hub.
///
/// The hub needs the bridge's address and the bridge delivers its events to the hub, so the hub's
/// context is made first: the bridge is built with its address, and whatever the bridge hears
/// before the hub runs waits in the hub's mailbox.
fn start_actors(store: &Store, metrics: &Arc<Metrics>) -> (Addr<Hub>, Addr<Presence>) {
    let hub_context = Context::<Hub>::new();
    let bridge = Bridge::new(
        store.clone(),
        metrics.clone(),
        hub_context.address().recipient(),
    )
    .start();
    let presence = Presence::new(store.clone(), metrics.clone()).start();
    let hub = hub_context.run(Hub::new(
        store.clone(),
        metrics.clone(),
        bridge,
        presence.clone(),
    ));
    (hub, presence)
}

/// Runs the node until `stop` fires (or the server ends), then drains and stops Redis.
async fn serve(
    started: Started,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let Started {
        server,
        app,
        mut embedded,
        metrics_server,
        ..
    } = started;
    let handle = server.handle();
    let server_task = actix_rt::spawn(server);
    let metrics_handle = metrics_server.map(|m| {
        let handle = m.handle();
        actix_rt::spawn(m);
        handle
    });
    stop.await;
    log::info!("stopping: closing sockets with 1001 and draining requests");
    app.stopping.store(true, Ordering::SeqCst);
    let grace = Duration::from_secs(app.settings.shutdown.grace_secs);
    let _ = tokio::time::timeout(grace, app.hub.send(CloseAll)).await;
    let _ = tokio::time::timeout(grace, app.presence.send(crate::actors::presence::Shutdown)).await;
    handle.stop(true).await;
    let _ = server_task.await;
    if let Some(metrics) = metrics_handle {
        metrics.stop(true).await;
    }
    if let Some(redis) = embedded.as_mut() {
        redis.stop(Duration::from_secs(10)).await;
    }
    log::info!("stopped");
    Ok(())
}

/// Runs a node in this process until SIGTERM or SIGINT (the `chatnode serve` command).
pub fn run(settings: Settings) -> std::io::Result<()> {
    actix_rt::System::new().block_on(async move {
        let started = start(settings).await.map_err(std::io::Error::other)?;
        log::info!("chatnode listening on http://{}", started.addr);
        serve(started, crate::shutdown::signal()).await
    })
}

/// A node running on its own thread, as tests and tools start it.
pub struct NodeHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    system: actix_rt::System,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl NodeHandle {
    /// `http://127.0.0.1:port`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// `ws://127.0.0.1:port/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
    /// Stops the node as SIGTERM would: sockets closed with 1001, requests drained.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
    /// Stops the node at once, with no cleanup at all (as if its machine died): presence keys
    /// stay in Redis until they expire, sockets drop without a close frame.
    pub fn kill(mut self) {
        self.stop.take();
        self.system.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a node on a thread of its own and returns once it listens.
pub fn spawn(settings: Settings) -> Result<NodeHandle, String> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("chatnode".into())
        .spawn(move || {
            let system = actix_rt::System::new();
            let sys = actix_rt::System::current();
            system.block_on(async move {
                match start(settings).await {
                    Ok(started) => {
                        let _ = ready_tx.send(Ok((started.addr, sys)));
                        serve(started, async {
                            let _ = stop_rx.await;
                        })
                        .await
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        Ok(())
                    }
                }
            })
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok((addr, system))) => Ok(NodeHandle {
            addr,
            stop: Some(stop_tx),
            system,
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err("the node thread ended before it was ready".into()),
    }
}
