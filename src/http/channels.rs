//! # Channels: list, create, join, leave, history, post, read markers and DMs.
//! The same operations as the socket's frames, delivered live exactly as if sent on a socket.
//! A post takes one of the node's places for posts in flight first ([`PostPlace`]), before any
//! Redis work: an overloaded node answers 503 `busy` with `Retry-After` instead of queueing.

use std::sync::atomic::Ordering::Relaxed;

use std::future::{ready, Ready};

use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::Authed;
use crate::app::{App, PostSlot};
use crate::error::{Error, Result};
use crate::store::channels::{validate_channel_name, Kind};
use crate::store::limits::Action;
use crate::store::users::normalize_username;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels", web::get().to(list))
        .route("/channels", web::post().to(create))
        .route("/channels/{name}/join", web::post().to(join))
        .route("/channels/{name}/leave", web::post().to(leave))
        .route("/channels/{name}/messages", web::get().to(history))
        .route("/channels/{name}/messages", web::post().to(post))
        .route("/channels/{name}/read", web::post().to(read))
        .route("/dms", web::post().to(open_dm));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    all: Option<bool>,
}

async fn list(
    app: web::Data<App>,
    authed: Authed,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    if q.all.unwrap_or(false) {
        let mine = app.store.memberships(&authed.user.username).await?;
        let all: Vec<_> = app
            .store
            .public_channels()
            .await?
            .into_iter()
            .map(|name| {
                let member = mine.contains(&name);
                json!({"name": name, "kind": Kind::Public, "member": member})
            })
            .collect();
        return Ok(HttpResponse::Ok().json(all));
    }
    Ok(HttpResponse::Ok().json(app.store.channel_summaries(&authed.user.username).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
}

async fn create(
    app: web::Data<App>,
    authed: Authed,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse> {
    validate_channel_name(&body.name)?;
    app.store
        .allow_channel_create(&authed.user.username)
        .await?;
    if let Err(e) = app.store.create_channel(&body.name).await {
        if let Err(e) = app.store.channel_not_created(&authed.user.username).await {
            log::warn!("giving back a channel count: {e}");
        }
        return Err(e);
    }
    app.store
        .join_channel(&authed.user.username, &authed.user.uuid, &body.name)
        .await?;
    Ok(HttpResponse::Created().json(json!({"name": body.name, "kind": Kind::Public})))
}

async fn join(
    app: web::Data<App>,
    authed: Authed,
    name: web::Path<String>,
) -> Result<HttpResponse> {
    app.store
        .count_action(&authed.user.username, Action::Join)
        .await?;
    app.store
        .join_channel(&authed.user.username, &authed.user.uuid, &name)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn leave(
    app: web::Data<App>,
    authed: Authed,
    name: web::Path<String>,
) -> Result<HttpResponse> {
    app.store
        .count_action(&authed.user.username, Action::Join)
        .await?;
    app.store
        .leave_channel(&authed.user.username, &authed.user.uuid, &name)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    limit: Option<usize>,
    before: Option<String>,
    after: Option<String>,
}

async fn history(
    app: web::Data<App>,
    authed: Authed,
    name: web::Path<String>,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse> {
    app.store.require_read(&authed.user.username, &name).await?;
    let limit = q.limit.unwrap_or(app.settings.history.page_size);
    let page = app
        .store
        .history_for(
            &authed.user.username,
            &name,
            q.before.as_deref(),
            q.after.as_deref(),
            limit,
        )
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostBody {
    text: String,
    /// Makes re-sending safe: the same client_id again stores nothing new.
    #[serde(default)]
    client_id: Option<String>,
    /// Makes the post a reply to that message of the same channel.
    #[serde(default)]
    reply_to: Option<String>,
}

/// A place among the node's posts in flight (`ws.max_inflight_per_node`), held until the post
/// is answered. Taken when the request is extracted, before the sign-in is looked up, so a
/// refused post costs no Redis round trip.
pub(super) struct PostPlace {
    _slot: PostSlot,
}

impl PostPlace {
    /// A place, or `busy` when the node already has as many posts in flight as it may.
    pub(super) fn take(app: &App) -> Result<Self> {
        app.posts_in_flight
            .try_take()
            .map(|slot| PostPlace { _slot: slot })
            .ok_or_else(|| {
                // Retry-After counts whole seconds.
                let ms = app
                    .posts_in_flight
                    .retry_after_ms(app.settings.ws.post_queue_timeout_ms);
                Error::Busy {
                    retry_after: ms.div_ceil(1000).max(1),
                }
            })
    }
}

impl FromRequest for PostPlace {
    type Error = Error;
    type Future = Ready<Result<Self>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(match req.app_data::<web::Data<App>>() {
            Some(app) => PostPlace::take(app),
            None => Err(Error::Internal("no app data".into())),
        })
    }
}

async fn post(
    req: HttpRequest,
    app: web::Data<App>,
    _place: PostPlace,
    authed: Authed,
    name: web::Path<String>,
    body: web::Json<PostBody>,
) -> Result<HttpResponse> {
    let u = &authed.user;
    let client_id = client_id(&req, body.client_id.as_deref())?;
    let posted = match &body.reply_to {
        Some(reply_to) => {
            app.store
                .post_reply_once(&u.username, &u.uuid, &name, &body.text, reply_to, client_id)
                .await?
        }
        None => {
            app.store
                .post_message_once(&u.username, &u.uuid, &name, &body.text, client_id)
                .await?
        }
    };
    let body = json!({"message": posted.event});
    if posted.duplicate {
        // Stored before under this client_id: the first answer again, nothing new written.
        return Ok(HttpResponse::Ok().json(body));
    }
    app.metrics.messages_posted.fetch_add(1, Relaxed);
    Ok(HttpResponse::Created().json(body))
}

/// The post's `client_id`: the body's, or the `Idempotency-Key` header's (the usual name for it
/// over HTTP). Both may be given only when they agree.
pub(super) fn client_id<'a>(
    req: &'a HttpRequest,
    in_body: Option<&'a str>,
) -> Result<Option<&'a str>> {
    let header = match req.headers().get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| Error::body("Idempotency-Key must be visible ASCII"))?,
        ),
        None => None,
    };
    match (in_body, header) {
        (Some(b), Some(h)) if b != h => Err(Error::body(
            "client_id and Idempotency-Key differ: send one, or the same in both",
        )),
        (Some(b), _) => Ok(Some(b)),
        (None, h) => Ok(h),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    last_id: String,
}

async fn read(
    app: web::Data<App>,
    authed: Authed,
    name: web::Path<String>,
    body: web::Json<ReadBody>,
) -> Result<HttpResponse> {
    app.store.require_read(&authed.user.username, &name).await?;
    app.store
        .count_action(&authed.user.username, Action::Read)
        .await?;
    app.store
        .mark_read(&authed.user.username, &name, &body.last_id)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DmBody {
    username: String,
}

async fn open_dm(
    app: web::Data<App>,
    authed: Authed,
    body: web::Json<DmBody>,
) -> Result<HttpResponse> {
    let other = normalize_username(&body.username).map_err(|_| Error::UserNotFound)?;
    let channel = app.store.open_dm(&authed.user.username, &other).await?;
    Ok(HttpResponse::Ok().json(json!({"channel": channel})))
}
