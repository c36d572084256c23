//! # Search and insights: messages, combined search, mentions, active users, recent messages,
//! top posters. Everything is limited to channels the caller may read.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::Authed;
use crate::app::App;
use crate::error::Result;
use crate::store::search::{channel_list, MessageQuery, UserQuery};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/search/messages", web::get().to(search_messages))
        .route("/search", web::get().to(search_all))
        .route("/mentions", web::get().to(mentions))
        .route("/channels/{name}/active", web::get().to(active))
        .route("/messages/recent", web::get().to(recent))
        .route("/stats/top-posters", web::get().to(top_posters));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageSearch {
    q: Option<String>,
    channel: Option<String>,
    username: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn search_messages(
    app: web::Data<App>,
    authed: Authed,
    q: web::Query<MessageSearch>,
) -> Result<HttpResponse> {
    let q = q.into_inner();
    let query = MessageQuery {
        q: q.q,
        channel: q.channel,
        username: q.username,
        limit: q.limit.unwrap_or(20).clamp(1, 100),
        offset: q.offset.unwrap_or(0).min(10_000),
    };
    Ok(HttpResponse::Ok().json(
        app.store
            .search_messages(&authed.user.username, &query)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Combined {
    q: String,
    limit: Option<usize>,
}

/// Seed 001's combined search: users and messages for one text.
async fn search_all(
    app: web::Data<App>,
    authed: Authed,
    q: web::Query<Combined>,
) -> Result<HttpResponse> {
    let limit = q.limit.unwrap_or(10).clamp(1, 50);
    if q.q.trim().is_empty() {
        return Ok(HttpResponse::Ok().json(json!({"users": [], "messages": []})));
    }
    let users = app
        .store
        .search_users(&UserQuery {
            q: Some(q.q.clone()),
            limit,
            ..Default::default()
        })
        .await?;
    let messages = app
        .store
        .search_messages(
            &authed.user.username,
            &MessageQuery {
                q: Some(q.q.clone()),
                limit,
                ..Default::default()
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(json!({"users": users.users, "messages": messages.messages})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Paging {
    limit: Option<usize>,
    /// A mention's `id` (exact), or unix ms; empty means none.
    before: Option<String>,
}

async fn mentions(
    app: web::Data<App>,
    authed: Authed,
    q: web::Query<Paging>,
) -> Result<HttpResponse> {
    let limit = q.limit.unwrap_or(20).clamp(1, 100);
    let before = q.before.as_deref().filter(|b| !b.is_empty());
    let page = app
        .store
        .mentions(&authed.user.username, before, limit)
        .await?;
    // A mention stays readable only while its channel is.
    let mut out = Vec::with_capacity(page.mentions.len());
    for m in page.mentions {
        if app
            .store
            .can_read(&authed.user.username, &m.channel)
            .await?
        {
            out.push(m);
        }
    }
    Ok(HttpResponse::Ok().json(json!({"mentions": out, "next_before": page.next_before})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Minutes {
    minutes: Option<u64>,
}

async fn active(
    app: web::Data<App>,
    authed: Authed,
    name: web::Path<String>,
    q: web::Query<Minutes>,
) -> Result<HttpResponse> {
    app.store.require_read(&authed.user.username, &name).await?;
    let minutes = q.minutes.unwrap_or(15).clamp(1, 7 * 24 * 60);
    Ok(HttpResponse::Ok().json(
        json!({"channel": name.as_str(), "users": app.store.active_users(&name, minutes).await?}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecentQuery {
    minutes: Option<u64>,
    channels: Option<String>,
}

async fn recent(
    app: web::Data<App>,
    authed: Authed,
    q: web::Query<RecentQuery>,
) -> Result<HttpResponse> {
    let me = &authed.user.username;
    let minutes = q.minutes.unwrap_or(5).clamp(1, 24 * 60);
    let channels: Vec<String> = match q.channels.as_deref().filter(|c| !c.is_empty()) {
        Some(list) => {
            let names = channel_list(list);
            for c in &names {
                app.store.require_read(me, c).await?;
            }
            names
        }
        None => {
            let mine = app.store.memberships(me).await?;
            let listed = app.store.listed(me, mine).await?;
            listed.into_iter().map(|(c, _)| c).collect()
        }
    };
    let messages = app.store.recent(&channels, minutes, 500).await?;
    Ok(HttpResponse::Ok().json(json!({"minutes": minutes, "messages": messages})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopQuery {
    channel: Option<String>,
    limit: Option<usize>,
}

async fn top_posters(
    app: web::Data<App>,
    authed: Authed,
    q: web::Query<TopQuery>,
) -> Result<HttpResponse> {
    let channels = match q.channel.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => {
            app.store.require_read(&authed.user.username, c).await?;
            vec![c.to_string()]
        }
        // Across channels, only public ones: private chats have no leaderboard.
        None => app.store.public_channels().await?,
    };
    let limit = q.limit.unwrap_or(10).clamp(1, 100);
    Ok(HttpResponse::Ok().json(json!({"posters": app.store.top_posters(&channels, limit).await?})))
}
