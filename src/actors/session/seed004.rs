//! Seed 004's channel frames: `users`, `channelJoin`, `channelLeave`, `channelMessage`. A
//! recipient UUID names the channel: empty for the public channel, else the DM with that user.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;

use super::reply::{encoded, JoinSpec, Reply};
use super::Caller;
use crate::accounts::User;
use crate::actors::room::{Joined, Prelude, Replay};
use crate::app::App;
use crate::error::{Error, Result};
use crate::protocol::outbound::{ChannelJoined, ChannelLeft, UserList};
use crate::protocol::{seed004, Outbound};
use crate::store::channels::GENERAL;

/// Messages of `channelJoin`'s answer.
const HISTORY: usize = 10;
/// Stream entries read to find them (joins and leaves are skipped).
const HISTORY_SCAN: usize = 100;
/// Users one `users` answer lists.
const MAX_USERS_LISTED: usize = 1000;

/// `users`: everyone, sorted by name, with online state.
pub(super) async fn users(cx: &Caller) -> Result<Reply> {
    let mut names = cx.app.store.all_usernames().await?;
    let total = names.len();
    names.truncate(MAX_USERS_LISTED);
    let users = users_of(&cx.app, &names).await?;
    Ok(Reply::frames(vec![Outbound::Users(UserList {
        received: users.len(),
        total,
        users,
    })]))
}

/// `channelJoin`: join General or a DM; the room answers with its last messages.
pub(super) async fn channel_join(cx: &Caller, recipient_uuid: String) -> Result<Reply> {
    let (app, me) = (&cx.app, cx.me()?);
    let channel = channel_of(app, me, &recipient_uuid).await?;
    if channel == GENERAL {
        app.store
            .join_channel(&me.username, &me.uuid, GENERAL)
            .await?;
    }
    let users = users_of(app, &app.store.members(&channel).await?).await?;
    let peer = recipient_uuid.clone();
    let prelude: Prelude = Box::new(move |joined: Joined<'_>| {
        let messages: Vec<_> = joined
            .events
            .iter()
            .filter(|e| e.kind == "message")
            .collect();
        let messages = messages[messages.len().saturating_sub(HISTORY)..]
            .iter()
            .map(|e| seed004::Message::from_event(e, &peer))
            .collect();
        encoded([Outbound::ChannelJoin(ChannelJoined {
            messages,
            recipient_uuid: peer,
            users,
        })])
    });
    Ok(Reply {
        joins: vec![JoinSpec {
            channel: channel.clone(),
            replay: Replay::Last(HISTORY_SCAN),
            peer_uuid: recipient_uuid,
            prelude,
        }],
        seed004_channel: Some(channel),
        ..Default::default()
    })
}

/// `channelLeave`: stop this socket's delivery of a channel; membership stays.
pub(super) async fn channel_leave(cx: &Caller, recipient_uuid: String) -> Result<Reply> {
    let (store, me) = (&cx.app.store, cx.me()?);
    // Leaving never opens a private chat.
    let channel = if recipient_uuid.is_empty() {
        Some(GENERAL.to_string())
    } else {
        match store.username_by_uuid(&recipient_uuid).await? {
            Some(other) => store.existing_dm(&me.username, &other).await?,
            None => None,
        }
    };
    Ok(Reply {
        frames: vec![Outbound::ChannelLeave(ChannelLeft { recipient_uuid })],
        leaves: channel.into_iter().collect(),
        ..Default::default()
    })
}

/// `channelMessage`: post; the room delivers it, to the sender's sockets too.
pub(super) async fn channel_message(
    cx: &Caller,
    recipient_uuid: &str,
    message: &str,
) -> Result<Reply> {
    let (app, me) = (&cx.app, cx.me()?);
    let channel = channel_of(app, me, recipient_uuid).await?;
    if channel == GENERAL && !app.store.is_member(&me.username, GENERAL).await? {
        app.store
            .join_channel(&me.username, &me.uuid, GENERAL)
            .await?;
    }
    app.store
        .post_message(&me.username, &me.uuid, &channel, message)
        .await?;
    app.metrics.messages_posted.fetch_add(1, Relaxed);
    Ok(Reply::default())
}

/// The channel a seed 004 frame means: General for an empty recipient, else the DM with them
/// (opened if new).
async fn channel_of(app: &App, me: &User, recipient_uuid: &str) -> Result<String> {
    if recipient_uuid.is_empty() {
        return Ok(GENERAL.to_string());
    }
    let other = app
        .store
        .username_by_uuid(recipient_uuid)
        .await?
        .ok_or(Error::UserNotFound)?;
    app.store.open_dm(&me.username, &other).await
}

/// Users with UUIDs and online state, as seed 004's objects.
async fn users_of(app: &App, names: &[String]) -> Result<Vec<seed004::User>> {
    let uuids = app.store.uuids(names).await?;
    let online: HashSet<String> = app.store.online_users().await?.into_iter().collect();
    Ok(names
        .iter()
        .map(|n| {
            let uuid = uuids.get(n).map(String::as_str).unwrap_or("");
            seed004::User::new(uuid, n, online.contains(n))
        })
        .collect())
}
