//! Every Redis key chatnode reads or writes, named in one place.
//!
//! Seed 003's names are the base (`usernames`, `user:<u>`, `channels`, `channel:<c>`,
//! `message:<id>`, `idx:users`, `idx:messages`), so a database filled by that guide's loader is
//! served as it is. Everything chatnode adds is spelled here and nowhere else.

/// Set of every username (seed 003).
pub const USERNAMES: &str = "usernames";
/// Set of public channel names (seed 003).
pub const CHANNELS: &str = "channels";
/// RediSearch index over `user:*` hashes (seed 003).
pub const IDX_USERS: &str = "idx:users";
/// RediSearch index over `message:*` hashes (seed 003).
pub const IDX_MESSAGES: &str = "idx:messages";
/// Prefix of user hashes, as RediSearch 2.x `ON HASH PREFIX` names it.
pub const USER_PREFIX: &str = "user:";
/// Prefix of message hashes.
pub const MESSAGE_PREFIX: &str = "message:";
/// Sorted set of online usernames, score = presence expiry (unix ms).
pub const ONLINE: &str = "online";
/// Pub/sub channel of presence transitions (`{"username","online"}`).
pub const PRESENCE_EVENTS: &str = "events:presence";
/// The last stream ID handed out to any channel stream (`"<ms>-<seq>"`): every append to a
/// `channel:<c>` takes the next ID from it, so IDs are unique across channels (`store::ids`).
pub const STREAM_IDS: &str = "ids:last";
/// Held (with an expiry) by the node running the history retention sweep.
pub const RETENTION_LOCK: &str = "retention:lock";
/// Pub/sub channel of per-user notices (revoked sessions, mentions, DM invitations).
pub const USER_EVENTS: &str = "events:user";

/// `user:<username>`: the profile hash (seed 003 fields plus chatnode's).
pub fn user(username: &str) -> String {
    format!("user:{username}")
}

/// `uuid:<uuid>` → username (seed 004 addresses users by UUID).
pub fn user_by_uuid(uuid: &str) -> String {
    format!("uuid:{uuid}")
}

/// `session:<sha256 hex of token>` → username, with a sliding TTL.
pub fn session(token_hash: &str) -> String {
    format!("session:{token_hash}")
}

/// `sessions:<username>`: set of that user's session key hashes, to revoke them all.
pub fn user_sessions(username: &str) -> String {
    format!("sessions:{username}")
}

/// `loginfail:user:<username>` / `loginfail:addr:<ip>`: failed-login counters.
pub fn login_failures(kind: &str, who: &str) -> String {
    format!("loginfail:{kind}:{who}")
}

/// `postrate:<username>`: posts counted in the user's current rate window (expires with it).
pub fn post_rate(username: &str) -> String {
    format!("postrate:{username}")
}

/// `postonce:<username>:<sha256 hex of channel NUL client_id>` → the stream ID first stored for
/// that post; expires after `ws.post_dedupe_secs`. Hashed, so any client_id gives a short key.
pub fn post_once(username: &str, channel: &str, client_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(channel.as_bytes());
    h.update([0u8]);
    h.update(client_id.as_bytes());
    format!("postonce:{username}:{}", hex::encode(h.finalize()))
}

/// `channel:<name>`: the channel's stream, the source of truth (seed 003).
pub fn channel(name: &str) -> String {
    format!("channel:{name}")
}

/// `message:<stream id>`: one message's hash (seed 003).
pub fn message(id: &str) -> String {
    format!("message:{id}")
}

/// Field of `user:<u>` holding the last stream ID that user saw in a channel (seed 003).
pub fn last_seen_field(channel: &str) -> String {
    format!("channel:{channel}")
}

/// `members:<channel>`: set of a channel's members.
pub fn members(channel: &str) -> String {
    format!("members:{channel}")
}

/// `memberships:<username>`: set of channels a user belongs to (public and DMs).
pub fn memberships(username: &str) -> String {
    format!("memberships:{username}")
}

/// `presence:<username>`: exists while the user is online (SETEX, seed 004).
pub fn presence(username: &str) -> String {
    format!("presence:{username}")
}

/// `active:<channel>`: sorted set of usernames by their last post or join there (unix ms).
pub fn activity(channel: &str) -> String {
    format!("active:{channel}")
}

/// `mentions:<username>`: sorted set of message IDs mentioning the user, by time (unix ms).
pub fn mentions(username: &str) -> String {
    format!("mentions:{username}")
}

/// `room:<channel>`: the pub/sub channel carrying a room's live events.
pub fn room_events(channel: &str) -> String {
    format!("room:{channel}")
}

/// The channel name of a pub/sub `room:<channel>` subject, if it is one.
pub fn room_from_events(subject: &str) -> Option<&str> {
    subject.strip_prefix("room:")
}

/// Stream of voice transcription jobs, read by the transcribers' consumer group.
pub const VOICE_JOBS: &str = "voice:jobs";
/// Consumer group of `voice:jobs` every transcriber joins.
pub const VOICE_GROUP: &str = "transcribers";
/// Sorted set of live transcribers (consumer names), score = heartbeat expiry (unix ms).
pub const VOICE_TRANSCRIBERS: &str = "voice:transcribers";

/// `audio:<id>`: a voice message's audio bytes, exactly as uploaded (binary-safe string).
pub fn audio(id: &str) -> String {
    format!("audio:{id}")
}

/// `audioinfo:<id>`: hash of that audio's channel, message ID, type, size and length.
pub fn audio_info(id: &str) -> String {
    format!("audioinfo:{id}")
}

/// `audioquota:{user:<u>}:<day>`: audio bytes the user uploaded on that UTC day (days since
/// 1970), kept two days. Tagged with the user's slot like every per-user counter.
pub fn audio_quota(username: &str, day: u64) -> String {
    format!("audioquota:{{user:{username}}}:{day}")
}

/// `limit:{user:<u>}:<kind>`: the user's count of one kind of action (`join`, `read`, `typing`,
/// `create`) in the current window; expires with it.
pub fn action_count(username: &str, kind: &str) -> String {
    format!("limit:{{user:{username}}}:{kind}")
}

/// `channelsmade:{user:<u>}`: public channels the user has created.
pub fn channels_created(username: &str) -> String {
    format!("channelsmade:{{user:{username}}}")
}
