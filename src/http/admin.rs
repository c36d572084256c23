//! # The admin API: disable and enable accounts, the overview. Only for the users listed in
//! `auth.admins`; anyone else gets 403 `forbidden`.

use std::sync::atomic::Ordering::Relaxed;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::Authed;
use crate::app::App;
use crate::error::{Error, Result};
use crate::store::users::normalize_username;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/users/{username}/disable", web::post().to(disable))
        .route("/admin/users/{username}/enable", web::post().to(enable))
        .route("/admin/overview", web::get().to(overview));
}

/// The signed-in administrator, or 403.
fn admin(app: &App, authed: &Authed) -> Result<()> {
    if app.store.is_admin(&authed.user.username) {
        Ok(())
    } else {
        Err(Error::Forbidden("administrators only".into()))
    }
}

async fn disable(
    app: web::Data<App>,
    authed: Authed,
    name: web::Path<String>,
) -> Result<HttpResponse> {
    admin(&app, &authed)?;
    let who = normalize_username(&name).map_err(|_| Error::UserNotFound)?;
    if who == authed.user.username {
        return Err(Error::body(
            "an administrator cannot disable their own account",
        ));
    }
    app.store.set_disabled(&who, true).await?;
    Ok(HttpResponse::Ok().json(json!({"username": who, "disabled": true})))
}

async fn enable(
    app: web::Data<App>,
    authed: Authed,
    name: web::Path<String>,
) -> Result<HttpResponse> {
    admin(&app, &authed)?;
    let who = normalize_username(&name).map_err(|_| Error::UserNotFound)?;
    app.store.set_disabled(&who, false).await?;
    Ok(HttpResponse::Ok().json(json!({"username": who, "disabled": false})))
}

async fn overview(app: web::Data<App>, authed: Authed) -> Result<HttpResponse> {
    admin(&app, &authed)?;
    // Nodes that reported within three presence ticks.
    let fresh = (app.settings.presence.refresh_interval_secs.max(1) * 3 * 1000) as i64;
    let overview = app.store.overview(fresh).await?;
    Ok(HttpResponse::Ok().json(json!({
        "users": overview.users,
        "disabled_users": overview.disabled_users,
        "channels": {"public": overview.public_channels, "private": overview.private_channels},
        "nodes": overview.nodes,
        "this_node_sockets": app.metrics.ws_connections.load(Relaxed),
        "redis": {
            "used_memory_bytes": overview.redis_used_memory_bytes,
            "used_memory_human": overview.redis_used_memory_human,
        },
    })))
}
