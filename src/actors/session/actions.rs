//! chatnode's message action frames: `edit`, `delete`, `react` / `unreact`, `replies`, and
//! `post` with a `reply_to`. Each action is stored as an event of the channel (delivered to
//! every subscriber as a `message` frame) and answered with `updated`: the message as it now is.

use std::sync::atomic::Ordering::Relaxed;

use super::reply::Reply;
use super::Caller;
use crate::error::Result;
use crate::protocol::outbound::{Posted, RepliesPage, Updated};
use crate::protocol::{ErrorAbout, Inbound, Outbound};
use crate::store::actions::Acted;

/// Frames that change a message: counted against the posting budget like posts.
pub(super) fn is_action(frame: &Inbound) -> bool {
    matches!(
        frame,
        Inbound::Edit { .. } | Inbound::Delete { .. } | Inbound::React { .. }
    )
}

/// What an error answering an action names: its channel and `client_id`, as for a post.
pub(super) fn about(frame: &Inbound) -> Option<ErrorAbout> {
    match frame {
        Inbound::Edit {
            channel, client_id, ..
        }
        | Inbound::Delete {
            channel, client_id, ..
        }
        | Inbound::React {
            channel, client_id, ..
        } => Some(ErrorAbout::Post {
            channel: channel.clone(),
            client_id: client_id.clone(),
        }),
        _ => None,
    }
}

fn updated(channel: String, client_id: Option<String>, acted: Acted) -> Reply {
    Reply::frames(vec![Outbound::Updated(Updated {
        channel,
        client_id,
        event_id: acted.event_id,
        message: acted.message,
    })])
}

/// `post` with `reply_to`: a reply, answered with `posted` like any post.
pub(super) async fn reply(
    cx: &Caller,
    channel: String,
    text: &str,
    reply_to: &str,
    client_id: Option<String>,
) -> Result<Reply> {
    let (app, me) = (&cx.app, cx.me()?);
    let posted = app
        .store
        .post_reply_once(
            &me.username,
            &me.uuid,
            &channel,
            text,
            reply_to,
            client_id.as_deref(),
        )
        .await?;
    if !posted.duplicate {
        app.metrics.messages_posted.fetch_add(1, Relaxed);
    }
    Ok(Reply::frames(vec![Outbound::Posted(Posted {
        channel,
        client_id,
        created_at: posted.event.created_at,
        id: posted.event.id,
    })]))
}

/// `edit`: the author changes a message's text.
pub(super) async fn edit(
    cx: &Caller,
    channel: String,
    id: &str,
    text: &str,
    client_id: Option<String>,
) -> Result<Reply> {
    let me = cx.me()?;
    let acted = cx
        .app
        .store
        .edit_message(
            &me.username,
            &me.uuid,
            &channel,
            id,
            text,
            client_id.as_deref(),
        )
        .await?;
    Ok(updated(channel, client_id, acted))
}

/// `delete`: the author deletes a message; a tombstone stays.
pub(super) async fn delete(
    cx: &Caller,
    channel: String,
    id: &str,
    client_id: Option<String>,
) -> Result<Reply> {
    let me = cx.me()?;
    let acted = cx
        .app
        .store
        .delete_message(&me.username, &me.uuid, &channel, id, client_id.as_deref())
        .await?;
    Ok(updated(channel, client_id, acted))
}

/// `react` / `unreact`: a member gives or takes back an emoji.
pub(super) async fn react(
    cx: &Caller,
    channel: String,
    id: &str,
    emoji: &str,
    add: bool,
    client_id: Option<String>,
) -> Result<Reply> {
    let me = cx.me()?;
    let acted = cx
        .app
        .store
        .react(
            &me.username,
            &me.uuid,
            &channel,
            id,
            emoji,
            add,
            client_id.as_deref(),
        )
        .await?;
    Ok(updated(channel, client_id, acted))
}

/// `replies`: one page of a message's replies, oldest first.
pub(super) async fn replies(
    cx: &Caller,
    channel: String,
    id: String,
    before: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
) -> Result<Reply> {
    let (app, me) = (&cx.app, cx.me()?);
    app.store.require_read(&me.username, &channel).await?;
    let limit = limit.unwrap_or(app.settings.history.page_size);
    let page = app
        .store
        .replies(
            &me.username,
            &channel,
            &id,
            before.as_deref(),
            after.as_deref(),
            limit,
        )
        .await?;
    Ok(Reply::frames(vec![Outbound::Replies(RepliesPage {
        channel,
        has_more: page.has_more,
        id,
        messages: page.messages,
    })]))
}
