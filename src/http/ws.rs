//! `GET /ws`: upgrades to a WebSocket and starts its session actor. The user may be known at the
//! upgrade (cookie, bearer, or `?token=`) or sign in later through frames.

use std::sync::atomic::{AtomicU64, Ordering};

use actix::{Actor, AsyncContext};
use actix_web::body::BodyStream;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::actors::outbox;
use crate::actors::session::Session;
use crate::app::App;
use crate::error::Error;

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

#[derive(serde::Deserialize)]
pub struct WsQuery {
    token: Option<String>,
}

pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<WsQuery>,
    app: web::Data<App>,
) -> Result<HttpResponse, actix_web::Error> {
    if app.stopping.load(Ordering::SeqCst) {
        return Err(Error::Unavailable("this node is stopping: connect to another".into()).into());
    }
    if !origin_allowed(&req, &app.settings.http.allowed_origins) {
        return Err(Error::Forbidden("this page's origin may not open the socket".into()).into());
    }
    let token = query.token.clone().or_else(|| super::request_token(&req));
    let user = match token {
        Some(t) => crate::accounts::authenticate(&app.store, &t).await?,
        None => None,
    };
    // actix-ws does the handshake and reads frames; the socket's outbox is the response body
    // itself (see `outbox`), so actix-ws's own writer handle and its queue are dropped here.
    let (response, _, stream) = actix_ws::handle(&req, body)?;
    let stream = stream.max_frame_size(app.settings.ws.max_frame_bytes);
    let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
    let (outbox, out_body, close_rx) = outbox::start(
        id,
        app.settings.ws.outbound_queue,
        app.settings.ws.outbound_queue_bytes,
        app.metrics.clone(),
    );
    let response = response
        .set_body(BodyStream::new(out_body))
        .map_into_boxed_body();
    let addr = super::client_addr(&req, &app);
    Session::create(move |ctx| {
        ctx.add_stream(stream);
        Session::new(id, app.clone(), outbox, close_rx, user, addr)
    });
    Ok(response)
}

/// Whether a socket may be opened from the page that asks: no `Origin` (not a browser), the
/// node's own origin (the `Origin`'s host and port are the request's `Host`), or one listed in
/// `http.allowed_origins`. Without this check, any site could open a socket with a visitor's
/// session cookie and read their chats (cross-site WebSocket hijacking).
fn origin_allowed(req: &HttpRequest, allowed: &[String]) -> bool {
    let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    if allowed.contains(&origin) {
        return true;
    }
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let host = req
        .headers()
        .get(actix_web::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase);
    matches!((authority, host), (Some(a), Some(h)) if a == h)
}
