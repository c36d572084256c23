//! What one user's voice uploads may cost: the posting budget is looked at before any decoding,
//! the sample rate and declared length are read from the header first, each user has a daily
//! audio quota shared by every node, a node decodes a bounded number of uploads at once, and the
//! audio expires after `voice.retention_days`. Real Redis, real nodes.

mod common;

use std::time::Duration;

use chatnode::store::keys;
use chatnode::Settings;
use common::*;
use serde_json::Value;

async fn upload(base: &str, channel: &str, token: &str, body: Vec<u8>) -> (u16, Value, String) {
    upload_as(base, channel, token, body, "").await
}

/// Uploads `body` as audio/wav; returns the status, the JSON body and the Retry-After header.
async fn upload_as(
    base: &str,
    channel: &str,
    token: &str,
    body: Vec<u8>,
    query: &str,
) -> (u16, Value, String) {
    let res = http()
        .post(format!("{base}/api/channels/{channel}/voice{query}"))
        .bearer_auth(token)
        .header("Content-Type", "audio/wav")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|h| h.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        retry,
    )
}

/// Noise that is no audio format.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn voice_settings(redis_url: &str) -> Settings {
    let mut s = settings(redis_url);
    s.voice.engine = "none".into();
    s
}

async fn one_user_in_lobby(node: &chatnode::NodeHandle) -> String {
    let t = register(&node.http_url(), "alice").await;
    create_channel(&node.http_url(), &t, "lobby").await;
    t
}

#[tokio::test]
async fn a_spent_posting_budget_refuses_an_upload_before_it_is_decoded() {
    let redis = TestRedis::start().await;
    let mut s = voice_settings(&redis.url());
    s.ws.rate_limit_messages = 2;
    s.ws.rate_limit_window_secs = 60;
    let a = node(s);
    let t = one_user_in_lobby(&a).await;
    let base = a.http_url();
    // Undecodable while the budget lasts: judged by decoding (415).
    let (status, v, _) = upload(&base, "lobby", &t, noise(4096)).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (415, Some("unsupported_audio"))
    );
    post_message(&base, &t, "lobby", "one").await;
    post_message(&base, &t, "lobby", "two").await;
    // Budget spent: the same body is refused without being decoded, with the wait.
    let (status, v, retry) = upload(&base, "lobby", &t, noise(4096)).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );
    let wait: u64 = retry.parse().expect("Retry-After in seconds");
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert!(redis.keys("audio:*").await.is_empty());
}

#[tokio::test]
async fn a_sample_rate_above_the_cap_is_refused_from_the_header() {
    let redis = TestRedis::start().await;
    let a = node(voice_settings(&redis.url()));
    let t = one_user_in_lobby(&a).await;
    let base = a.http_url();
    // 0.2 s at 384 kHz: 150 KB that would decode to 76,800 samples per 0.2 s, 23 MB a minute.
    let high = silence_wav_frames(384_000, 76_800);
    let (status, v, _) = upload(&base, "lobby", &t, high).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (415, Some("unsupported_audio")),
        "{v}"
    );
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("384000 Hz") && m.contains("48000 Hz"), "{m}");
    // At the cap it is taken.
    let (status, v, _) = upload(&base, "lobby", &t, silence_wav_frames(48_000, 9_600)).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["message"]["voice"]["duration_ms"], 200);
    // A header declaring more than max_seconds (60 s) is refused before decoding, even though
    // the body holds only part of it.
    let mut long = silence_wav_frames(8_000, 8_000);
    let declared: u32 = 8_000 * 2 * 120;
    long[4..8].copy_from_slice(&(36 + declared).to_le_bytes());
    long[40..44].copy_from_slice(&declared.to_le_bytes());
    long.resize(44 + declared as usize / 32, 0);
    let (status, v, _) = upload(&base, "lobby", &t, long).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (413, Some("audio_too_large")),
        "{v}"
    );
    assert_eq!(redis.keys("audio:*").await.len(), 1);
}

/// `frames` frames of mono 16-bit silence at `rate`.
fn silence_wav_frames(rate: u32, frames: usize) -> Vec<u8> {
    wav_from_pcm(rate, 1, &vec![0u8; frames * 2])
}

#[tokio::test]
async fn the_daily_audio_quota_holds_across_nodes_and_refused_uploads_cost_none_of_it() {
    let redis = TestRedis::start().await;
    let clip = silence_wav(8_000, 2); // 32,044 bytes
    let mut s = voice_settings(&redis.url());
    s.voice.daily_quota_bytes = 3 * clip.len() as u64 + 100;
    let a = node(s.clone());
    let b = node(s);
    let t = one_user_in_lobby(&a).await;
    let bob = register(&a.http_url(), "bob").await;
    join(&a.http_url(), &bob, "lobby").await;
    // Bad audio and a repeated client_id take nothing from the quota.
    let (status, _, _) = upload(&a.http_url(), "lobby", &t, noise(clip.len())).await;
    assert_eq!(status, 415);
    let (status, _, _) = upload_as(&a.http_url(), "lobby", &t, clip.clone(), "?client_id=c1").await;
    assert_eq!(status, 202);
    let (status, _, _) = upload_as(&b.http_url(), "lobby", &t, clip.clone(), "?client_id=c1").await;
    assert_eq!(status, 200, "a repeat answers the first");
    for base in [b.http_url(), a.http_url()] {
        let (status, v, _) = upload(&base, "lobby", &t, clip.clone()).await;
        assert_eq!(status, 202, "{v}");
    }
    // The fourth clip of the day passes the quota, on either node.
    for base in [a.http_url(), b.http_url()] {
        let (status, v, retry) = upload(&base, "lobby", &t, clip.clone()).await;
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (429, Some("rate_limited")),
            "{v}"
        );
        assert!(
            v["error"]["message"].as_str().unwrap().contains("per day"),
            "{v}"
        );
        let wait: u64 = retry.parse().unwrap();
        assert!((1..=86_400).contains(&wait), "Retry-After {wait}");
    }
    // Text posts are not affected, nor is another user's quota.
    post_message(&a.http_url(), &t, "lobby", "still here").await;
    let (status, v, _) = upload(&b.http_url(), "lobby", &bob, clip.clone()).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(redis.keys("audio:*").await.len(), 4);
}

#[tokio::test]
async fn voice_audio_expires_after_the_retention_days() {
    let redis = TestRedis::start().await;
    let mut s = voice_settings(&redis.url());
    s.voice.retention_days = 2;
    let a = node(s);
    let t = one_user_in_lobby(&a).await;
    let (status, v, _) = upload(&a.http_url(), "lobby", &t, silence_wav(8_000, 1)).await;
    assert_eq!(status, 202, "{v}");
    let id = v["message"]["voice"]["audio"].as_str().unwrap().to_string();
    let mut conn = redis.conn().await;
    for key in [keys::audio("lobby", &id), keys::audio_info("lobby", &id)] {
        let ttl: i64 = redis::cmd("TTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            (2 * 86_400 - 60..=2 * 86_400).contains(&ttl),
            "{key} TTL {ttl}"
        );
    }
    // Once expired, playing it answers 404 and the message stays.
    let _: () = redis::cmd("DEL")
        .arg(keys::audio("lobby", &id))
        .arg(keys::audio_info("lobby", &id))
        .query_async(&mut conn)
        .await
        .unwrap();
    let (status, _) = get(&a.http_url(), &format!("/api/audio/{id}"), &t).await;
    assert_eq!(status, 404);
    let (status, page) = get(&a.http_url(), "/api/channels/lobby/messages", &t).await;
    assert_eq!(status, 200);
    assert!(page.to_string().contains(&id), "{page}");

    // retention_days = 0 keeps the audio.
    let mut s = voice_settings(&redis.url());
    s.voice.retention_days = 0;
    let b = node(s);
    let (status, v, _) = upload(&b.http_url(), "lobby", &t, silence_wav(8_000, 1)).await;
    assert_eq!(status, 202, "{v}");
    let id = v["message"]["voice"]["audio"].as_str().unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(keys::audio("lobby", id))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(ttl, -1);
}

#[tokio::test]
async fn uploads_beyond_the_concurrent_decodes_are_answered_busy() {
    let redis = TestRedis::start().await;
    let mut s = voice_settings(&redis.url());
    s.voice.max_concurrent_decodes = 1;
    s.ws.rate_limit_messages = 1000;
    s.voice.daily_quota_bytes = 0;
    let a = node(s);
    let t = one_user_in_lobby(&a).await;
    let base = a.http_url();
    // 20 s of 48 kHz: 1.9 MB each, a few tens of ms to decode; 12 at once overlap.
    let clip = silence_wav(48_000, 20);
    let mut busy = 0;
    let mut stored = 0;
    for _round in 0..5 {
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let (base, t, clip) = (base.clone(), t.clone(), clip.clone());
            tasks.push(tokio::spawn(async move {
                upload(&base, "lobby", &t, clip).await
            }));
        }
        for task in tasks {
            let (status, v, retry) = task.await.unwrap();
            match status {
                202 => stored += 1,
                503 => {
                    assert_eq!(v["error"]["code"], "busy", "{v}");
                    assert_eq!(retry, "1");
                    busy += 1;
                }
                other => panic!("{other}: {v}"),
            }
        }
        if busy > 0 {
            break;
        }
    }
    assert!(
        busy > 0,
        "with one decode slot, some of 12 parallel uploads were refused"
    );
    assert!(stored > 0);
    assert_eq!(redis.keys("audio:*").await.len(), stored);
    // Once the burst is over, an upload is taken again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, v, _) = upload(&base, "lobby", &t, silence_wav(8_000, 1)).await;
    assert_eq!(status, 202, "{v}");
}
