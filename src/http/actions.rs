//! # Message actions: edit, delete, reactions and a message's replies.
//! The same operations as the socket's `edit`, `delete`, `react` / `unreact` and `replies`
//! frames, stored as events of the channel and delivered live exactly as if sent on a socket.
//! Writes take a place among the node's posts in flight ([`PostPlace`]) and accept a
//! `client_id` (or `Idempotency-Key`) as posts do.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::channels::{client_id, PostPlace};
use super::Authed;
use crate::app::App;
use crate::error::Result;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels/{name}/messages/{id}", web::patch().to(edit))
        .route("/channels/{name}/messages/{id}", web::delete().to(delete))
        .route(
            "/channels/{name}/messages/{id}/reactions/{emoji}",
            web::put().to(react),
        )
        .route(
            "/channels/{name}/messages/{id}/reactions/{emoji}",
            web::delete().to(unreact),
        )
        .route(
            "/channels/{name}/messages/{id}/replies",
            web::get().to(replies),
        );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditBody {
    text: String,
    #[serde(default)]
    client_id: Option<String>,
}

async fn edit(
    req: HttpRequest,
    app: web::Data<App>,
    _place: PostPlace,
    authed: Authed,
    path: web::Path<(String, String)>,
    body: web::Json<EditBody>,
) -> Result<HttpResponse> {
    let (name, id) = path.into_inner();
    let u = &authed.user;
    let client_id = client_id(&req, body.client_id.as_deref())?;
    let acted = app
        .store
        .edit_message(&u.username, &u.uuid, &name, &id, &body.text, client_id)
        .await?;
    Ok(HttpResponse::Ok().json(json!({"message": acted.message})))
}

async fn delete(
    req: HttpRequest,
    app: web::Data<App>,
    _place: PostPlace,
    authed: Authed,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (name, id) = path.into_inner();
    let u = &authed.user;
    let client_id = client_id(&req, None)?;
    app.store
        .delete_message(&u.username, &u.uuid, &name, &id, client_id)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn react(
    req: HttpRequest,
    app: web::Data<App>,
    place: PostPlace,
    authed: Authed,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse> {
    reaction(req, app, place, authed, path.into_inner(), true).await
}

async fn unreact(
    req: HttpRequest,
    app: web::Data<App>,
    place: PostPlace,
    authed: Authed,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse> {
    reaction(req, app, place, authed, path.into_inner(), false).await
}

/// Gives or takes back a reaction; answers the message's reaction summary as the user sees it.
async fn reaction(
    req: HttpRequest,
    app: web::Data<App>,
    _place: PostPlace,
    authed: Authed,
    (name, id, emoji): (String, String, String),
    add: bool,
) -> Result<HttpResponse> {
    let u = &authed.user;
    let client_id = client_id(&req, None)?;
    let acted = app
        .store
        .react(&u.username, &u.uuid, &name, &id, &emoji, add, client_id)
        .await?;
    Ok(HttpResponse::Ok().json(acted.message.reactions.unwrap_or_default()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepliesQuery {
    limit: Option<usize>,
    before: Option<String>,
    after: Option<String>,
}

async fn replies(
    app: web::Data<App>,
    authed: Authed,
    path: web::Path<(String, String)>,
    q: web::Query<RepliesQuery>,
) -> Result<HttpResponse> {
    let (name, id) = path.into_inner();
    app.store.require_read(&authed.user.username, &name).await?;
    let limit = q.limit.unwrap_or(app.settings.history.page_size);
    let page = app
        .store
        .replies(
            &authed.user.username,
            &name,
            &id,
            q.before.as_deref(),
            q.after.as_deref(),
            limit,
        )
        .await?;
    Ok(HttpResponse::Ok().json(page))
}
