//! # Voice messages: upload and playback.
//! `POST /api/channels/{name}/voice` takes the audio as the body (its `Content-Type` names the
//! format) and answers 202 with the posted message; the transcript follows live.
//! `GET /api/audio/{id}` streams the audio back to whoever may read its channel.

use std::sync::atomic::Ordering::Relaxed;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::Authed;
use crate::app::App;
use crate::error::{Error, Result};
use crate::voice::audio::{self, AudioError};
use crate::voice::state;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels/{name}/voice", web::post().to(upload))
        .route("/audio/{id}", web::get().to(play));
}

fn too_large(max: usize) -> Error {
    Error::AudioTooLarge(format!("voice uploads are at most {max} bytes"))
}

/// Reads the whole body, refusing more than `max` bytes. A body that claims or turns out to be
/// somewhat larger is read to its end first, so the client gets the 413 rather than a reset.
async fn read_body(req: &HttpRequest, mut payload: web::Payload, max: usize) -> Result<Vec<u8>> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let drain_limit = (max as u64).saturating_mul(8);
    if declared.is_some_and(|n| n > drain_limit) {
        return Err(too_large(max));
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(max as u64) as usize);
    let mut total = 0u64;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| Error::body(format!("reading the body: {e}")))?;
        total += chunk.len() as u64;
        if total > drain_limit {
            return Err(too_large(max));
        }
        if total <= max as u64 {
            body.extend_from_slice(&chunk);
        }
    }
    if total > max as u64 {
        return Err(too_large(max));
    }
    Ok(body)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    /// Makes re-sending safe: the same client_id again stores nothing new.
    client_id: Option<String>,
}

async fn upload(
    app: web::Data<App>,
    authed: Authed,
    name: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let v = &app.settings.voice;
    if !v.enabled {
        return Err(Error::Unavailable(
            "voice messages are turned off on this server".into(),
        ));
    }
    let u = &authed.user;
    let channel = name.into_inner();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|h| h.to_str().unwrap_or("invalid").to_string());
    // The body is read (within bounds) before any answer, so every error reaches the client
    // rather than a connection reset; it is only looked at once the sender may post.
    let body = read_body(&req, payload, v.max_bytes).await?;
    // Counted among the node's posts in flight once the body is in, so a refusal still reaches
    // the client as 503 `busy` rather than a reset.
    let _place = super::channels::PostPlace::take(&app)?;
    let query = web::Query::<UploadQuery>::from_query(req.query_string())
        .map_err(|e| Error::body(e.to_string()))?;
    app.store.require_member(&u.username, &channel).await?;
    if let Some(until) = app.store.muted_until(&channel, &u.username).await? {
        return Err(Error::Muted { until });
    }
    let format = audio::format_from_content_type(content_type.as_deref()).map_err(audio_error)?;
    if body.is_empty() {
        return Err(Error::UnsupportedAudio(format!(
            "the body is empty; voice messages may be {}",
            audio::ACCEPTED
        )));
    }
    // Refused before any decoding: a spent posting budget, the day's audio quota, a node
    // already decoding as many uploads as it may.
    app.store.require_post_budget(&u.username).await?;
    let decode_slot = app
        .decodes
        .try_take()
        .ok_or(Error::Busy { retry_after: 1 })?;
    let reservation = app
        .store
        .reserve_audio(&u.username, body.len() as u64)
        .await?;
    let stored = measure_and_post(&app, u, &channel, body, format, &query, decode_slot).await;
    if !matches!(&stored, Ok(p) if !p.duplicate) {
        app.store.release_audio(reservation).await;
    }
    let posted = stored?;
    let body = json!({"message": posted.event});
    if posted.duplicate {
        // Stored before under this client_id: nothing new written, no second transcription.
        return Ok(HttpResponse::Ok().json(body));
    }
    app.metrics.messages_posted.fetch_add(1, Relaxed);
    Ok(HttpResponse::Accepted().json(body))
}

/// Decodes the upload (holding one of the node's decode slots while it runs) and stores it.
async fn measure_and_post(
    app: &App,
    u: &crate::accounts::User,
    channel: &str,
    body: Vec<u8>,
    format: Option<audio::Format>,
    query: &UploadQuery,
    slot: crate::app::PostSlot,
) -> Result<crate::store::posting::Posted> {
    let v = &app.settings.voice;
    let (max_seconds, max_rate) = (v.max_seconds, v.max_sample_rate);
    let (measured, body) = web::block(move || {
        let m = audio::measure(&body, format, max_seconds, max_rate);
        drop(slot);
        (m, body)
    })
    .await
    .map_err(|e| Error::Internal(format!("decoding thread: {e}")))?;
    let (format, duration_ms) = measured.map_err(audio_error)?;
    let transcript = if app.store.live_transcribers().await? > 0 {
        state::PENDING
    } else {
        state::UNAVAILABLE
    };
    app.store
        .post_voice(
            &u.username,
            &u.uuid,
            channel,
            &body,
            format.mime(),
            duration_ms,
            transcript,
            query.client_id.as_deref(),
        )
        .await
}

fn audio_error(e: AudioError) -> Error {
    match e {
        AudioError::Unsupported(m) => Error::UnsupportedAudio(m),
        e @ AudioError::TooLong { .. } => Error::AudioTooLarge(e.to_string()),
    }
}

/// Parses `bytes=a-b`, `bytes=a-` or `bytes=-n` against a length; None: serve it all.
fn parse_range(h: &str, len: u64) -> Option<std::result::Result<(u64, u64), ()>> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            len - 1
        } else {
            b.parse::<u64>().ok()?.min(len - 1)
        };
        if start > end || start >= len {
            return Some(Err(()));
        }
        (start, end)
    };
    Some(Ok(range))
}

/// Bytes sent per Redis read while streaming.
const CHUNK: u64 = 256 * 1024;

async fn play(
    app: web::Data<App>,
    authed: Authed,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let id = id.into_inner();
    let not_found = || Error::NotFound("no such audio".into());
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(not_found());
    }
    let info = app.store.audio_info(&id).await?.ok_or_else(not_found)?;
    app.store
        .require_read(&authed.user.username, &info.channel)
        .await?;
    let len = info.bytes;
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| parse_range(h, len));
    let (mut res, start, end) = match range {
        Some(Err(())) => {
            return Ok(HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{len}")))
                .finish())
        }
        Some(Ok((s, e))) => {
            let mut r = HttpResponse::PartialContent();
            r.insert_header((header::CONTENT_RANGE, format!("bytes {s}-{e}/{len}")));
            (r, s, e)
        }
        None => (HttpResponse::Ok(), 0, len.saturating_sub(1)),
    };
    res.insert_header((header::CONTENT_TYPE, info.content_type.clone()))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CACHE_CONTROL, "private, max-age=86400"))
        .insert_header(("X-Content-Type-Options", "nosniff"));
    if len == 0 {
        return Ok(res.finish());
    }
    let store = app.store.clone();
    let info = std::sync::Arc::new(info);
    let body = futures_util::stream::unfold(Some(start), move |next| {
        let store = store.clone();
        let info = info.clone();
        async move {
            let from = next?;
            let to = (from + CHUNK - 1).min(end);
            let item = store
                .audio_range(&info, from, to)
                .await
                .map(web::Bytes::from)
                .map_err(actix_web::error::ErrorServiceUnavailable);
            let next = if item.is_ok() && to < end {
                Some(to + 1)
            } else {
                None
            };
            Some((item, next))
        }
    });
    Ok(res.no_chunking(end - start + 1).streaming(body))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some(Ok((0, 99))));
        assert_eq!(parse_range("bytes=900-", 1000), Some(Ok((900, 999))));
        assert_eq!(parse_range("bytes=-100", 1000), Some(Ok((900, 999))));
        assert_eq!(parse_range("bytes=0-5000", 1000), Some(Ok((0, 999))));
        assert_eq!(parse_range("bytes=2000-", 1000), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
    }
}
