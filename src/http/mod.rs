//! The HTTP surface: health, readiness, metrics, the REST API, the socket upgrade and the bundled
//! frontend. Handlers are thin: parse, call the store or the actors, answer.

mod accounts;
mod actions;
mod admin;
mod channels;
mod error;
mod frontend;
mod members;
mod search;
mod voice;
mod ws;

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::future::{FutureExt, LocalBoxFuture};
use serde_json::json;

use crate::accounts::User;
use crate::app::App;
use crate::error::Error;
use crate::settings::{canonical_ip, Cidr};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "chatnode_session";

/// Routes of a node.
pub fn configure(cfg: &mut web::ServiceConfig, settings: &crate::settings::Settings) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(settings.http.max_json_bytes)
            .error_handler(|err, _| Error::body(err.to_string()).into()),
    )
    .app_data(
        web::QueryConfig::default().error_handler(|err, _| Error::body(err.to_string()).into()),
    )
    .app_data(
        web::PathConfig::default().error_handler(|err, _| Error::body(err.to_string()).into()),
    )
    .service(
        web::scope("")
            .wrap(actix_web::middleware::from_fn(count_requests))
            // gzip when the client asks for it; WebSocket upgrades pass through untouched.
            .wrap(actix_web::middleware::Compress::default())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .configure(|cfg| metrics_here(cfg, settings.http.metrics_port == 0))
            .route("/ws", web::get().to(ws::upgrade))
            .service(
                web::scope("/api")
                    .configure(accounts::routes)
                    .configure(channels::routes)
                    .configure(members::routes)
                    .configure(admin::routes)
                    .configure(actions::routes)
                    .configure(search::routes)
                    .configure(voice::routes)
                    .default_service(web::to(|| async {
                        Err::<HttpResponse, _>(Error::NotFound("no such endpoint".into()))
                    })),
            )
            .configure(frontend::routes),
    );
}

async fn count_requests(
    req: ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let app = req.app_data::<web::Data<App>>().cloned();
    let res = next.call(req).await?;
    if let Some(app) = app {
        app.metrics.http(res.status().as_u16());
    }
    Ok(res)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(app: web::Data<App>) -> HttpResponse {
    let search = app
        .store
        .search
        .map(|v| v.label())
        .unwrap_or_else(|| "unavailable".into());
    if app.stopping.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable()
            .json(json!({"redis": "ok", "search": search, "status": "stopping"}));
    }
    match tokio::time::timeout(std::time::Duration::from_secs(2), app.store.ping()).await {
        Ok(Ok(())) => {
            let backfill = if app.store.backfill_done.load(Ordering::SeqCst) {
                "done"
            } else {
                "running"
            };
            let mut voice = serde_json::to_value(app.voice.get()).unwrap_or_default();
            voice["transcribers"] = json!(app.store.live_transcribers().await.unwrap_or(0));
            HttpResponse::Ok().json(json!({
                "redis": "ok",
                "redis_mode": app.store.mode(),
                "redis_masters": app.store.topology().masters.len(),
                "search": search,
                "search_backfill": backfill,
                "voice": voice
            }))
        }
        Ok(Err(e)) => HttpResponse::ServiceUnavailable()
            .json(json!({"redis": "down", "search": search, "error": e.to_string()})),
        Err(_) => HttpResponse::ServiceUnavailable()
            .json(json!({"redis": "down", "search": search, "error": "timeout"})),
    }
}

/// `/metrics` on a listener: served, or (when it has a listener of its own) answered 404 rather
/// than falling through to the frontend.
fn metrics_here(cfg: &mut web::ServiceConfig, served: bool) {
    if served {
        cfg.route("/metrics", web::get().to(metrics));
    } else {
        cfg.route(
            "/metrics",
            web::get().to(|| async {
                Err::<HttpResponse, _>(Error::NotFound(
                    "metrics are served on http.metrics_port".into(),
                ))
            }),
        );
    }
}

/// Routes of the separate metrics listener (`http.metrics_port`): `/metrics` only.
pub fn configure_metrics_listener(cfg: &mut web::ServiceConfig) {
    metrics_here(cfg, true);
}

async fn metrics(app: web::Data<App>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(app.metrics.render(app.started))
}

/// The session token of a request: bearer header, then cookie.
pub fn request_token(req: &HttpRequest) -> Option<String> {
    if let Some(h) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        if let Some(t) = h.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) {
            return Some(t.trim().to_string());
        }
    }
    req.cookie(SESSION_COOKIE).map(|c| c.value().to_string())
}

/// The client's address: the peer, or, when the peer is a trusted proxy, what X-Forwarded-For
/// says (see [`forwarded_client`]).
pub fn client_addr(req: &HttpRequest, app: &App) -> String {
    let Some(peer) = req.peer_addr().map(|a| canonical_ip(a.ip())) else {
        return String::new();
    };
    let proxies = app.settings.http.proxies();
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    forwarded_client(peer, forwarded, &proxies).to_string()
}

/// The client behind a chain of proxies. X-Forwarded-For is read only when `peer` is trusted,
/// right to left (each proxy appends the address it saw), skipping trusted proxies: the
/// right-most untrusted entry is the client, as the left part is whatever the client sent. An
/// entry that is not an IP address ends the walk at the last trusted hop.
pub fn forwarded_client<'a>(
    peer: IpAddr,
    forwarded: impl DoubleEndedIterator<Item = &'a str>,
    proxies: &[Cidr],
) -> IpAddr {
    let trusted = |ip: IpAddr| proxies.iter().any(|c| c.contains(ip));
    if !trusted(peer) {
        return peer;
    }
    let entries: Vec<&str> = forwarded.flat_map(|h| h.split(',')).collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Some(ip) = parse_forwarded_ip(entry) else {
            return client;
        };
        client = ip;
        if !trusted(ip) {
            break;
        }
    }
    client
}

/// An X-Forwarded-For entry as an address: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or
/// `[2001:db8::1]:5678`.
fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(canonical_ip)
}

/// The signed-in user of a request, with the token it used.
pub struct Authed {
    pub user: User,
    pub token: String,
}

impl actix_web::FromRequest for Authed {
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let app = req.app_data::<web::Data<App>>().cloned();
        let token = request_token(req);
        async move {
            let (Some(app), Some(token)) = (app, token) else {
                return Err(Error::Unauthorized);
            };
            match crate::accounts::authenticate(&app.store, &token).await? {
                Some(user) => Ok(Authed { user, token }),
                None => Err(Error::Unauthorized),
            }
        }
        .boxed_local()
    }
}
