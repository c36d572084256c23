//! # Channel settings, members, roles, bans and mutes.
//! A private channel or group conversation answers `channel_not_found` to anyone outside it,
//! exactly as a channel that does not exist; the store decides who may do what
//! (`store::members`, `store::moderation`).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map};

use super::Authed;
use crate::app::App;
use crate::error::{Error, Result};
use crate::store::channels::Kind;
use crate::store::members::{check_title, Role};
use crate::store::moderation::MAX_SLOW_MODE_SECS;
use crate::store::users::{normalize_username, now_ms};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels/{name}", web::get().to(info))
        .route("/channels/{name}", web::patch().to(update))
        .route("/channels/{name}", web::delete().to(delete))
        .route("/channels/{name}/members", web::get().to(members))
        .route("/channels/{name}/members", web::post().to(add))
        .route(
            "/channels/{name}/members/{username}",
            web::delete().to(remove),
        )
        .route(
            "/channels/{name}/members/{username}",
            web::put().to(set_role),
        )
        .route("/channels/{name}/bans", web::get().to(bans))
        .route("/channels/{name}/bans", web::post().to(ban))
        .route("/channels/{name}/bans/{username}", web::delete().to(unban))
        .route("/channels/{name}/mutes", web::post().to(mute))
        .route(
            "/channels/{name}/mutes/{username}",
            web::delete().to(unmute),
        );
}

/// A username from a path or body; one that cannot exist is `user_not_found`.
fn username(raw: &str) -> Result<String> {
    normalize_username(raw).map_err(|_| Error::UserNotFound)
}

async fn info(
    app: web::Data<App>,
    authed: Authed,
    name: web::Path<String>,
) -> Result<HttpResponse> {
    let me = &authed.user.username;
    let mut info = serde_json::to_value(app.store.channel_info(me, &name).await?)
        .map_err(|e| Error::Internal(e.to_string()))?;
    info["muted_until"] = json!(app.store.muted_until(&name, me).await?);
    Ok(HttpResponse::Ok().json(info))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    topic: Option<String>,
    title: Option<String>,
    private: Option<bool>,
    /// Making a public channel private takes it from everyone who is not a member: it needs
    /// `"confirm": true`.
    #[serde(default)]
    confirm: bool,
    slow_mode_secs: Option<u64>,
}

async fn update(
    app: web::Data<App>,
    authed: Authed,
    name: web::Path<String>,
    body: web::Json<UpdateBody>,
) -> Result<HttpResponse> {
    let me = &authed.user.username;
    let s = app.store.standing(me, &name).await?;
    if !s.manageable() {
        return Err(s.read_error());
    }
    let kind = s.kind.unwrap_or(Kind::Public);
    if kind == Kind::Dm {
        return Err(Error::Forbidden("a two-person chat has no settings".into()));
    }
    // Title and topic: moderators and owners, any member of a group conversation.
    let needed = if kind == Kind::Group { 1 } else { 2 };
    let mut changes = Map::new();
    for (field, value) in [("topic", &body.topic), ("title", &body.title)] {
        if let Some(v) = value {
            check_title(v)?;
            changes.insert(field.into(), json!(v));
        }
    }
    if let Some(secs) = body.slow_mode_secs {
        if secs > MAX_SLOW_MODE_SECS {
            return Err(Error::body(format!(
                "slow_mode_secs is 0 (off) to {MAX_SLOW_MODE_SECS}"
            )));
        }
        if s.rank() < 2 {
            return Err(moderators_only());
        }
        changes.insert("slow_mode_secs".into(), json!(secs.to_string()));
    }
    if s.rank() < needed && !changes.is_empty() {
        return Err(moderators_only());
    }
    if let Some(private) = body.private {
        if kind == Kind::Group {
            return Err(Error::body("a group conversation is always private"));
        }
        let is_private = kind == Kind::Private;
        if private != is_private {
            if s.rank() < 3 {
                return Err(Error::Forbidden(
                    "only the owner may make a channel public or private".into(),
                ));
            }
            if private && !body.confirm {
                return Err(Error::body(
                    "making a public channel private hides it from everyone outside it: send \"confirm\": true",
                ));
            }
            app.store.set_visibility(me, &name, !private).await?;
        }
    }
    if !changes.is_empty() {
        app.store.update_channel(me, &name, &changes).await?;
    }
    Ok(HttpResponse::Ok().json(app.store.channel_info(me, &name).await?))
}

fn moderators_only() -> Error {
    Error::Forbidden("only the channel's moderators and owner may do that".into())
}

async fn delete(
    app: web::Data<App>,
    authed: Authed,
    name: web::Path<String>,
) -> Result<HttpResponse> {
    app.store
        .delete_channel(&authed.user.username, &name)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    limit: Option<usize>,
    /// The last username of the previous page.
    after: Option<String>,
}

async fn members(
    app: web::Data<App>,
    authed: Authed,
    name: web::Path<String>,
    q: web::Query<Page>,
) -> Result<HttpResponse> {
    let (members, next_after) = app
        .store
        .member_page(
            &authed.user.username,
            &name,
            q.after.as_deref().filter(|a| !a.is_empty()),
            q.limit.unwrap_or(100),
        )
        .await?;
    Ok(HttpResponse::Ok().json(json!({"members": members, "next_after": next_after})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Who {
    username: String,
}

async fn add(
    app: web::Data<App>,
    authed: Authed,
    name: web::Path<String>,
    body: web::Json<Who>,
) -> Result<HttpResponse> {
    let who = username(&body.username)?;
    let added = app.store.invite(&authed.user.username, &name, &who).await?;
    let mut status = if added {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(status.json(json!({"channel": name.as_str(), "username": who, "added": added})))
}

async fn remove(
    app: web::Data<App>,
    authed: Authed,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (name, who) = path.into_inner();
    let who = username(&who)?;
    app.store.kick(&authed.user.username, &name, &who).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: String,
}

async fn set_role(
    app: web::Data<App>,
    authed: Authed,
    path: web::Path<(String, String)>,
    body: web::Json<RoleBody>,
) -> Result<HttpResponse> {
    let (name, who) = path.into_inner();
    let who = username(&who)?;
    let role =
        Role::parse(&body.role).ok_or_else(|| Error::body("a role is `moderator` or `member`"))?;
    app.store
        .set_role(&authed.user.username, &name, &who, role)
        .await?;
    Ok(HttpResponse::Ok().json(json!({"username": who, "role": role})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sanction {
    username: String,
    /// Unix ms when it ends; absent or 0 for no end.
    until: Option<i64>,
    /// Or: seconds from now.
    duration_secs: Option<u64>,
    #[serde(default)]
    reason: String,
}

impl Sanction {
    /// When it ends (unix ms, 0 = no end); a time already past is refused.
    fn until(&self) -> Result<i64> {
        let until = match (self.until, self.duration_secs) {
            (Some(_), Some(_)) => {
                return Err(Error::body("send `until` or `duration_secs`, not both"))
            }
            (Some(u), None) => u,
            (None, Some(d)) => now_ms().saturating_add((d.min(10 * 365 * 86_400) * 1000) as i64),
            (None, None) => 0,
        };
        if until != 0 && until <= now_ms() {
            return Err(Error::body("`until` is in the past"));
        }
        Ok(until)
    }
}

async fn ban(
    app: web::Data<App>,
    authed: Authed,
    name: web::Path<String>,
    body: web::Json<Sanction>,
) -> Result<HttpResponse> {
    let who = username(&body.username)?;
    let until = body.until()?;
    app.store
        .ban(&authed.user.username, &name, &who, until, &body.reason)
        .await?;
    Ok(HttpResponse::Created()
        .json(json!({"username": who, "until": until, "reason": body.reason})))
}

async fn bans(
    app: web::Data<App>,
    authed: Authed,
    name: web::Path<String>,
) -> Result<HttpResponse> {
    let bans = app.store.bans(&authed.user.username, &name).await?;
    Ok(HttpResponse::Ok().json(json!({"bans": bans})))
}

async fn unban(
    app: web::Data<App>,
    authed: Authed,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (name, who) = path.into_inner();
    let who = username(&who)?;
    app.store.unban(&authed.user.username, &name, &who).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn mute(
    app: web::Data<App>,
    authed: Authed,
    name: web::Path<String>,
    body: web::Json<Sanction>,
) -> Result<HttpResponse> {
    let who = username(&body.username)?;
    let until = body.until()?;
    app.store
        .mute(&authed.user.username, &name, &who, until)
        .await?;
    Ok(HttpResponse::Created().json(json!({"username": who, "until": until})))
}

async fn unmute(
    app: web::Data<App>,
    authed: Authed,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (name, who) = path.into_inner();
    let who = username(&who)?;
    app.store.unmute(&authed.user.username, &name, &who).await?;
    Ok(HttpResponse::NoContent().finish())
}
