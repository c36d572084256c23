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
use crate::store::members::check_title;
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
    /// A private channel: invisible to everyone but its members.
    #[serde(default)]
    private: bool,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    title: String,
}

/// Gives back the count of a channel that was allowed but not made (its name was taken).
async fn give_back_channel(app: &App, username: &str) {
    if let Err(e) = app.store.channel_not_created(username).await {
        log::warn!("giving back a channel count of {username}: {e}");
    }
}

async fn create(
    app: web::Data<App>,
    authed: Authed,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse> {
    let u = &authed.user;
    validate_channel_name(&body.name)?;
    check_title(&body.title)?;
    check_title(&body.topic)?;
    // Counted before anything is written, apart from how the channel is made.
    app.store.allow_channel_create(&u.username).await?;
    if body.private {
        let made = app
            .store
            .create_private(
                &u.username,
                &body.name,
                Kind::Private,
                &body.title,
                &body.topic,
            )
            .await;
        if let Err(e) = made {
            give_back_channel(&app, &u.username).await;
            return Err(e);
        }
        return Ok(HttpResponse::Created().json(json!({"name": body.name, "kind": Kind::Private})));
    }
    if let Err(e) = app.store.create_channel(&body.name).await {
        give_back_channel(&app, &u.username).await;
        return Err(e);
    }
    app.store
        .join_channel(&u.username, &u.uuid, &body.name)
        .await?;
    app.store.set_public_owner(&body.name, &u.username).await?;
    if !body.title.is_empty() || !body.topic.is_empty() {
        let mut changes = serde_json::Map::new();
        changes.insert("title".into(), json!(body.title));
        changes.insert("topic".into(), json!(body.topic));
        app.store
            .update_channel(&u.username, &body.name, &changes)
            .await?;
    }
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
    /// A two-person chat with this user.
    #[serde(default)]
    username: Option<String>,
    /// A group conversation with these 2 to 9 users.
    #[serde(default)]
    usernames: Option<Vec<String>>,
    /// The group conversation's title.
    #[serde(default)]
    title: String,
}

async fn open_dm(
    app: web::Data<App>,
    authed: Authed,
    body: web::Json<DmBody>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    match (body.username, body.usernames) {
        (Some(name), None) => {
            let other = normalize_username(&name).map_err(|_| Error::UserNotFound)?;
            let channel = app.store.open_dm(&authed.user.username, &other).await?;
            Ok(HttpResponse::Ok().json(json!({"channel": channel})))
        }
        (None, Some(names)) => {
            if names.len() > 20 {
                return Err(Error::body(
                    "a group conversation has 2 to 9 people besides you",
                ));
            }
            let others = names
                .iter()
                .map(|n| normalize_username(n).map_err(|_| Error::UserNotFound))
                .collect::<Result<Vec<_>>>()?;
            let channel = app
                .store
                .create_group(&authed.user.username, &others, &body.title)
                .await?;
            Ok(HttpResponse::Created()
                .json(json!({"channel": channel, "kind": Kind::Group, "title": body.title})))
        }
        _ => Err(Error::body(
            "send `username` (a two-person chat) or `usernames` (a group)",
        )),
    }
}
