//! chatnode's frames: `subscribe`, `resume`, `unsubscribe`, `post`, `history`, `read`, `typing`.
//! Channels are named; every event carries its stream ID.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;

use super::reply::{encoded, JoinSpec, Reply};
use super::{error_frame, Caller};
use crate::actors::room::{Ephemeral, Joined, Prelude, Replay};
use crate::error::{Error, Result};
use crate::protocol::outbound::{self, Gap, HistoryPage, Posted, Subscribed, Unread, Unsubscribed};
use crate::protocol::{ErrorAbout, Outbound};
use crate::store::ids::check_id;
use crate::store::keys;
use crate::store::limits::Action;

/// Channels one `subscribe` or `resume` may name.
const MAX_CHANNELS_PER_FRAME: usize = 200;

/// `subscribe`: live events of these channels from now on.
pub(super) async fn subscribe(cx: &Caller, channels: Vec<String>) -> Result<Reply> {
    let channels = channels.into_iter().map(|c| (c, None));
    join(cx, channels.collect()).await
}

/// `resume`: replay what was missed after each ID, then live.
pub(super) async fn resume(cx: &Caller, channels: BTreeMap<String, String>) -> Result<Reply> {
    let channels = channels.into_iter().map(|(c, id)| (c, Some(id)));
    join(cx, channels.collect()).await
}

/// Joins each channel it may read, replaying after the given ID if any; a channel it may not
/// read answers an `error` naming it, and the others still join.
async fn join(cx: &Caller, channels: Vec<(String, Option<String>)>) -> Result<Reply> {
    if channels.len() > MAX_CHANNELS_PER_FRAME {
        return Err(Error::body(format!(
            "at most {MAX_CHANNELS_PER_FRAME} channels per frame"
        )));
    }
    let me = cx.me()?;
    let mut reply = Reply::default();
    for (channel, from) in channels {
        let checked = match &from {
            Some(id) => check_id(id),
            None => Ok(()),
        };
        let allowed = match checked {
            Ok(()) => cx.app.store.require_read(&me.username, &channel).await,
            Err(e) => Err(e),
        };
        if let Err(e) = allowed {
            let about = ErrorAbout::Channel {
                channel: channel.clone(),
            };
            let kind = if from.is_some() {
                "resume"
            } else {
                "subscribe"
            };
            reply.frames.push(error_frame(&e, kind, Some(about)));
            continue;
        }
        reply.joins.push(JoinSpec {
            prelude: replay_then_subscribed(channel.clone(), from.is_some()),
            channel,
            replay: from.map(Replay::Since).unwrap_or(Replay::None),
            peer_uuid: String::new(),
        });
    }
    Ok(reply)
}

/// What a `subscribe` / `resume` gets from the room: the replayed events as `message` frames,
/// then `subscribed` (with the gap, when too much was missed to replay).
fn replay_then_subscribed(channel: String, resumed: bool) -> Prelude {
    Box::new(move |joined: Joined<'_>| {
        let mut frames: Vec<_> = joined
            .events
            .iter()
            .map(|e| outbound::message_json(e).into())
            .collect();
        let gap = joined.gap_after.map(|after| Gap {
            after: after.into(),
            until: joined.last_id.into(),
        });
        frames.extend(encoded([Outbound::Subscribed(Subscribed {
            channel,
            gap,
            last_id: joined.last_id.into(),
            replayed: joined.events.len(),
            resumed,
        })]));
        frames
    })
}

/// `unsubscribe`: the list is echoed as sent.
pub(super) fn unsubscribe(channels: Vec<String>) -> Reply {
    Reply {
        frames: vec![Outbound::Unsubscribed(Unsubscribed {
            channels: channels.clone(),
        })],
        leaves: channels,
        ..Default::default()
    }
}

/// `post`: stored once per `client_id`; answered with `posted`.
pub(super) async fn post(
    cx: &Caller,
    channel: String,
    text: &str,
    client_id: Option<String>,
) -> Result<Reply> {
    let (app, me) = (&cx.app, cx.me()?);
    let posted = app
        .store
        .post_message_once(&me.username, &me.uuid, &channel, text, client_id.as_deref())
        .await?;
    // A client_id seen before: the first post's ack again, nothing stored now.
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

/// `history`: one page, oldest first.
pub(super) async fn history(
    cx: &Caller,
    channel: String,
    before: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
) -> Result<Reply> {
    let (app, me) = (&cx.app, cx.me()?);
    app.store.require_read(&me.username, &channel).await?;
    let limit = limit.unwrap_or(app.settings.history.page_size);
    let page = app
        .store
        .history_for(
            &me.username,
            &channel,
            before.as_deref(),
            after.as_deref(),
            limit,
        )
        .await?;
    Ok(Reply::frames(vec![Outbound::History(HistoryPage {
        channel,
        has_more: page.has_more,
        messages: page.messages,
    })]))
}

/// `read`: move the read marker; answered with the unread count.
pub(super) async fn read(cx: &Caller, channel: String, last_id: &str) -> Result<Reply> {
    let (store, me) = (&cx.app.store, cx.me()?);
    store.require_read(&me.username, &channel).await?;
    store.count_action(&me.username, Action::Read).await?;
    store.mark_read(&me.username, &channel, last_id).await?;
    let count = store.unread(&me.username, &channel).await?;
    Ok(Reply::frames(vec![Outbound::Unread(Unread {
        channel,
        count,
    })]))
}

/// `typing`: published to the channel's rooms on every node, never stored or answered.
pub(super) async fn typing(cx: &Caller, channel: String) -> Result<Reply> {
    let (store, me) = (&cx.app.store, cx.me()?);
    // Beyond the user's typing budget the frame is dropped: typing is never answered.
    match store.count_action(&me.username, Action::Typing).await {
        Err(Error::Limited { .. }) => return Ok(Reply::default()),
        other => other?,
    }
    store.require_member(&me.username, &channel).await?;
    let event = Ephemeral::typing(channel, me.username.clone());
    let payload = serde_json::to_string(&event).map_err(|e| Error::Internal(e.to_string()))?;
    store
        .publish(&keys::room_events(&event.channel), &payload)
        .await?;
    Ok(Reply::default())
}
