//! # Accounts: registration, sign-in, sessions, profiles and the user directory.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{client_addr, Authed, SESSION_COOKIE};
use crate::accounts::{self, SignedIn};
use crate::app::App;
use crate::error::{Error, Result};
use crate::store::search::UserQuery;
use crate::store::users::{normalize_username, Location, ProfileUpdate};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/register", web::post().to(register))
        .route("/auth/login", web::post().to(login))
        .route("/auth/logout", web::post().to(logout))
        .route("/usernames/{username}", web::get().to(username_available))
        .route("/me", web::get().to(me))
        .route("/me", web::patch().to(update_me))
        .route("/me/password", web::put().to(change_password))
        .route("/users", web::get().to(search_users))
        .route("/users/online", web::get().to(online_users))
        .route("/users/{username}", web::get().to(user));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    username: String,
    password: String,
    firstname: Option<String>,
    lastname: Option<String>,
    city: Option<String>,
    country: Option<String>,
    hobbies: Option<Vec<String>>,
    location: Option<Location>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current: String,
    new: String,
}

fn session_cookie(app: &App, token: &str) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, token.to_string())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(app.settings.http.cookie_secure)
        .max_age(CookieDuration::seconds(
            app.settings.auth.session_ttl_secs as i64,
        ))
        .finish()
}

fn signed_in(app: &App, status: actix_web::http::StatusCode, s: SignedIn) -> HttpResponse {
    HttpResponse::build(status)
        .cookie(session_cookie(app, &s.token))
        .json(json!({"user": s.profile, "token": s.token}))
}

async fn register(app: web::Data<App>, body: web::Json<RegisterBody>) -> Result<HttpResponse> {
    let b = body.into_inner();
    let profile = ProfileUpdate {
        firstname: b.firstname,
        lastname: b.lastname,
        city: b.city,
        country: b.country,
        hobbies: b.hobbies,
        location: b.location,
    };
    let s = accounts::register(&app.store, &b.username, &b.password, profile).await?;
    Ok(signed_in(&app, actix_web::http::StatusCode::CREATED, s))
}

async fn login(
    req: HttpRequest,
    app: web::Data<App>,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse> {
    let addr = client_addr(&req, &app);
    match accounts::login(&app.store, &body.username, &body.password, &addr).await {
        Ok(s) => Ok(signed_in(&app, actix_web::http::StatusCode::OK, s)),
        Err(e) => {
            if matches!(e, Error::InvalidCredentials) {
                app.metrics
                    .logins_failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e)
        }
    }
}

async fn logout(app: web::Data<App>, authed: Authed) -> Result<HttpResponse> {
    accounts::logout(&app.store, &authed.user, &authed.token).await?;
    let mut gone = session_cookie(&app, "");
    gone.make_removal();
    Ok(HttpResponse::NoContent().cookie(gone).finish())
}

async fn username_available(app: web::Data<App>, path: web::Path<String>) -> Result<HttpResponse> {
    let name = normalize_username(&path)?;
    let available = app.store.username_available(&name).await?;
    Ok(HttpResponse::Ok().json(json!({"username": name, "available": available})))
}

async fn me(app: web::Data<App>, authed: Authed) -> Result<HttpResponse> {
    let p = app
        .store
        .profile(&authed.user.username)
        .await?
        .ok_or(Error::UserNotFound)?;
    Ok(HttpResponse::Ok().json(p))
}

async fn update_me(
    app: web::Data<App>,
    authed: Authed,
    body: web::Json<ProfileUpdate>,
) -> Result<HttpResponse> {
    body.validate()?;
    let p = app
        .store
        .update_profile(&authed.user.username, &body)
        .await?;
    Ok(HttpResponse::Ok().json(p))
}

async fn change_password(
    app: web::Data<App>,
    authed: Authed,
    body: web::Json<PasswordBody>,
) -> Result<HttpResponse> {
    accounts::change_password(&app.store, &authed.user, &body.current, &body.new).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn user(
    app: web::Data<App>,
    _authed: Authed,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let name = normalize_username(&path).map_err(|_| Error::UserNotFound)?;
    let p = app.store.profile(&name).await?.ok_or(Error::UserNotFound)?;
    Ok(HttpResponse::Ok().json(p))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserSearch {
    q: Option<String>,
    city: Option<String>,
    country: Option<String>,
    hobby: Option<String>,
    near: Option<String>,
    radius_km: Option<f64>,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn search_users(
    app: web::Data<App>,
    _authed: Authed,
    q: web::Query<UserSearch>,
) -> Result<HttpResponse> {
    let q = q.into_inner();
    let near = match q.near.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => {
            let (lat, lon) = s
                .split_once(',')
                .and_then(|(a, b)| {
                    Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?))
                })
                .ok_or_else(|| Error::body("near is <lat>,<lon>"))?;
            Location { lat, lon }.validate()?;
            let km = q.radius_km.unwrap_or(50.0);
            if !(km > 0.0 && km <= 20_000.0) {
                return Err(Error::body("radius_km must be between 0 and 20000"));
            }
            Some((lat, lon, km))
        }
    };
    let query = UserQuery {
        q: q.q,
        city: q.city,
        country: q.country,
        hobby: q.hobby,
        near,
        limit: q.limit.unwrap_or(20).clamp(1, 100),
        offset: q.offset.unwrap_or(0).min(10_000),
    };
    Ok(HttpResponse::Ok().json(app.store.search_users(&query).await?))
}

async fn online_users(app: web::Data<App>, _authed: Authed) -> Result<HttpResponse> {
    let mut names = app.store.online_users().await?;
    names.sort();
    let uuids = app.store.uuids(&names).await?;
    let users: Vec<_> = names
        .iter()
        .map(|n| json!({"username": n, "uuid": uuids.get(n), "online": true}))
        .collect();
    Ok(HttpResponse::Ok().json(users))
}
