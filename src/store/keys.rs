//! Every Redis key chatnode reads or writes, named in one place, laid out so that every script
//! and every multi-key command touches exactly one hash slot (the rule of Redis Cluster, which
//! also holds for one `redis-server` started with `cluster-enabled yes`).
//!
//! Two kinds of anchor keep seed 003's names, so a database filled by that guide's loader is
//! served as it is: `channel:<c>` (the channel's stream) and `user:<u>` (the profile hash). Every
//! other key of a channel carries the hash tag `{channel:<c>}`, every other key of a user the
//! tag `{user:<u>}`: Redis hashes only what is between the braces, so `members:{channel:general}`
//! lives in the same slot as `channel:general`, and one script can touch both. Channel names are
//! `[a-z0-9_-]` (DMs `dm:<a>:<b>`), usernames `[a-z0-9_.-]`: no name holds a brace, so no name
//! can break out of its tag. docs/DESIGN.md, "Key layout", has the table: key, slot, who
//! writes it, who reads it.
//!
//! Keys that belong to no channel and no user (`usernames`, `channels`, the search
//! indexes, the voice job stream, `uuid:<uuid>`) are each touched alone or by single-key
//! commands. The names of the older layout (`message:<id>`, `members:<c>`, …) are kept here as
//! `legacy_*` for the readers that still serve such data and for `chatnode migrate`.

/// Set of every username (seed 003).
pub const USERNAMES: &str = "usernames";
/// Set of public channel names (seed 003).
pub const CHANNELS: &str = "channels";
/// RediSearch index over `user:*` hashes (seed 003).
pub const IDX_USERS: &str = "idx:users";
/// Prefix of user hashes, as RediSearch 2.x `ON HASH PREFIX` names it.
pub const USER_PREFIX: &str = "user:";
/// Prefix of message hashes, old (`message:<id>`) and new (`message:{channel:<c>}:<id>`) alike.
pub const MESSAGE_PREFIX: &str = "message:";
/// How many sorted sets the online set is spread over ([`online_bucket`]): a constant, so every
/// node of every version agrees where a user is without reading a setting; 32 fixed names put
/// 12, 11 and 9 buckets on the three masters of a default 3-master cluster.
pub const ONLINE_BUCKETS: u16 = 32;

/// `online:{online:<k>}`, k in `0..ONLINE_BUCKETS`: bucket k of the online usernames (sorted set,
/// score = presence expiry, unix ms). Each bucket is its own slot, so the set of a large fleet is
/// no single hot key; a user is always in bucket [`online_bucket_of`].
pub fn online_bucket(k: u16) -> String {
    format!("online:{{online:{k}}}")
}

/// Every bucket of the online set, in order.
pub fn online_buckets() -> Vec<String> {
    (0..ONLINE_BUCKETS).map(online_bucket).collect()
}

/// The bucket a user's online entry lives in: CRC16 (XMODEM) of the username, mod
/// [`ONLINE_BUCKETS`], stable across nodes, versions and restarts.
pub fn online_bucket_of(username: &str) -> u16 {
    crc16_xmodem(username.as_bytes()) % ONLINE_BUCKETS
}

/// The online bucket of one user: `online:{online:<k>}`.
pub fn online(username: &str) -> String {
    online_bucket(online_bucket_of(username))
}

/// Pub/sub channel of presence transitions (`{"username","online"}`).
pub const PRESENCE_EVENTS: &str = "events:presence";
/// Held (with an expiry) by the node running the history retention sweep.
pub const RETENTION_LOCK: &str = "retention:lock";
/// Pub/sub channel of per-user notices (revoked sessions, mentions, DM invitations).
pub const USER_EVENTS: &str = "events:user";

/// The RediSearch index over message hashes (seed 003's `idx:messages`). A function, so that
/// an index per shard can be named here when there is more than one.
pub fn messages_index() -> &'static str {
    "idx:messages"
}

/// The hash tag of a channel's keys: `{channel:<c>}`, the slot of `channel:<c>`.
pub fn channel_tag(channel: &str) -> String {
    format!("{{channel:{channel}}}")
}

/// The hash tag of a user's keys: `{user:<u>}`, the slot of `user:<u>`.
pub fn user_tag(username: &str) -> String {
    format!("{{user:{username}}}")
}

// ---- per user: the slot of `user:<u>` ----

/// `user:<username>`: the profile hash (seed 003 fields plus chatnode's). Anchor of the user's
/// slot.
pub fn user(username: &str) -> String {
    format!("user:{username}")
}

/// `session:{user:<u>}:<sha256 hex of token>` → `<username> <generation>`, sliding TTL. Tokens
/// name their user (`<random>.<username>`), so the session lives in the user's slot and is
/// checked against the user's generation in one step.
pub fn session(username: &str, token_hash: &str) -> String {
    format!("session:{}:{token_hash}", user_tag(username))
}

/// `sessions:{user:<u>}`: set of that user's session token hashes, to revoke them all.
pub fn user_sessions(username: &str) -> String {
    format!("sessions:{}", user_tag(username))
}

/// `loginfail:{user:<u>}`: failed logins for the user.
pub fn login_failures_user(username: &str) -> String {
    format!("loginfail:{}", user_tag(username))
}

/// `loginfail:{user:<u>}:<ip>`: this address has failed for this user.
pub fn login_failures_pair(username: &str, addr: &str) -> String {
    format!("loginfail:{}:{addr}", user_tag(username))
}

/// `loginfail:addr:<ip>`: failed logins from an address (its own slot, touched alone).
pub fn login_failures_addr(addr: &str) -> String {
    format!("loginfail:addr:{addr}")
}

/// `postrate:{user:<u>}`: posts counted in the user's current rate window (expires with it).
pub fn post_rate(username: &str) -> String {
    format!("postrate:{}", user_tag(username))
}

/// `voicequota:{user:<u>}:<day>`: audio bytes the user uploaded on that UTC day (days since
/// 1970), kept two days.
pub fn audio_quota(username: &str, day: u64) -> String {
    format!("voicequota:{}:{day}", user_tag(username))
}

/// `limit:{user:<u>}:<kind>`: the user's count of one kind of action (`join`, `read`, `typing`,
/// `create`) in the current window; expires with it.
pub fn action_count(username: &str, kind: &str) -> String {
    format!("limit:{}:{kind}", user_tag(username))
}

/// `channelsmade:{user:<u>}`: public channels the user has created.
pub fn channels_created(username: &str) -> String {
    format!("channelsmade:{}", user_tag(username))
}

/// `memberships:{user:<u>}`: set of channels a user belongs to (public and DMs).
pub fn memberships(username: &str) -> String {
    format!("memberships:{}", user_tag(username))
}

/// `presence:{user:<u>}`: exists while the user is online (SETEX, seed 004).
pub fn presence(username: &str) -> String {
    format!("presence:{}", user_tag(username))
}

/// `presence:{user:<u>}:nodes`: which nodes claim the user online, with each claim's expiry.
pub fn presence_nodes(username: &str) -> String {
    format!("presence:{}:nodes", user_tag(username))
}

/// `mentions:{user:<u>}`: sorted set of the messages mentioning the user, by time (unix ms);
/// members are [`message_ref`]s (`<channel>/<id>`; a bare `<id>` from the older layout).
pub fn mentions(username: &str) -> String {
    format!("mentions:{}", user_tag(username))
}

/// Field of `user:<u>` holding the last stream ID that user saw in a channel (seed 003).
pub fn last_seen_field(channel: &str) -> String {
    format!("channel:{channel}")
}

/// `uuid:<uuid>` → username (seed 004 addresses users by UUID); looked up alone.
pub fn user_by_uuid(uuid: &str) -> String {
    format!("uuid:{uuid}")
}

// ---- per channel: the slot of `channel:<c>` ----

/// `channel:<name>`: the channel's stream, the source of truth (seed 003). Anchor of the
/// channel's slot. Its stream IDs are Redis's own (`XADD … *`), unique within the channel.
pub fn channel(name: &str) -> String {
    format!("channel:{name}")
}

/// `message:{channel:<c>}:<stream id>`: one message's hash.
pub fn message(channel: &str, id: &str) -> String {
    format!("message:{}:{id}", channel_tag(channel))
}

/// The stream ID of a message hash key, new layout or old.
pub fn id_of_message_key(key: &str) -> &str {
    key.rsplit_once(':').map_or(key, |(_, id)| id)
}

/// How a message is named across channels (mentions, jobs): `<channel>/<id>`. Channel names
/// hold no `/`.
pub fn message_ref(channel: &str, id: &str) -> String {
    format!("{channel}/{id}")
}

/// The channel and ID of a [`message_ref`]; `None` for a bare `<id>` (the older layout).
pub fn parse_message_ref(r: &str) -> Option<(&str, &str)> {
    r.rsplit_once('/')
}

/// `members:{channel:<c>}`: set of a channel's members.
pub fn members(channel: &str) -> String {
    format!("members:{}", channel_tag(channel))
}

/// `active:{channel:<c>}`: sorted set of usernames by their last post or join there (unix ms).
pub fn activity(channel: &str) -> String {
    format!("active:{}", channel_tag(channel))
}

/// `postonce:{channel:<c>}:<sha256 hex of username NUL client_id>` → the stream ID first stored
/// for that post; expires after `ws.post_dedupe_secs`. Hashed, so any client_id gives a short
/// key; in the channel's slot, so the posting script checks and sets it.
pub fn post_once(username: &str, channel: &str, client_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(username.as_bytes());
    h.update([0u8]);
    h.update(client_id.as_bytes());
    format!(
        "postonce:{}:{}",
        channel_tag(channel),
        hex::encode(h.finalize())
    )
}

/// `room:{channel:<c>}`: the pub/sub channel carrying a room's live events (in the channel's
/// slot, so that a sharded `SPUBLISH` from the posting script stays in it).
pub fn room_events(channel: &str) -> String {
    format!("room:{}", channel_tag(channel))
}

/// The channel name of a pub/sub `room:{channel:<c>}` subject, if it is one.
pub fn room_from_events(subject: &str) -> Option<&str> {
    subject
        .strip_prefix("room:{channel:")
        .and_then(|s| s.strip_suffix('}'))
}

/// `audio:{channel:<c>}:<a>`: a voice message's audio bytes, exactly as uploaded.
pub fn audio(channel: &str, audio_id: &str) -> String {
    format!("audio:{}:{audio_id}", channel_tag(channel))
}

/// `audioinfo:{channel:<c>}:<a>`: hash of that audio's channel, message ID, type, size, length.
pub fn audio_info(channel: &str, audio_id: &str) -> String {
    format!("audioinfo:{}:{audio_id}", channel_tag(channel))
}

/// `audiochannel:<a>` → the channel of audio `<a>`: how a playback URL, which names only the
/// audio, finds the audio's slot. Written before the voice post, touched alone.
pub fn audio_channel(audio_id: &str) -> String {
    format!("audiochannel:{audio_id}")
}

/// `reactions:{channel:<c>}:<id>`: hash of a message's reactions, emoji → how many gave it. Its
/// length is the number of distinct emoji (at most 20).
pub fn reactions(channel: &str, id: &str) -> String {
    format!("reactions:{}:{id}", channel_tag(channel))
}

/// `reactors:{channel:<c>}:<id>`: set of who reacted with what on a message, `<emoji>\n<user>`
/// (one reaction per user per emoji).
pub fn reactors(channel: &str, id: &str) -> String {
    format!("reactors:{}:{id}", channel_tag(channel))
}

/// `replies:{channel:<c>}:<id>`: the replies to a message, members their stream IDs padded to
/// sort as text (`actions::lex_id`), all at score 0 so they page with `ZRANGEBYLEX`.
pub fn replies(channel: &str, id: &str) -> String {
    format!("replies:{}:{id}", channel_tag(channel))
}

/// `tombstones:{channel:<c>}`: the deleted messages of a channel, as `replies` keeps IDs, so
/// history shows each in its place after its stream entry is gone.
pub fn tombstones(channel: &str) -> String {
    format!("tombstones:{}", channel_tag(channel))
}

// ---- voice jobs: their own keys, each touched alone ----

/// Stream of voice transcription jobs, read by the transcribers' consumer group.
pub const VOICE_JOBS: &str = "voice:jobs";
/// Consumer group of `voice:jobs` every transcriber joins.
pub const VOICE_GROUP: &str = "transcribers";
/// Sorted set of live transcribers (consumer names), score = heartbeat expiry (unix ms).
pub const VOICE_TRANSCRIBERS: &str = "voice:transcribers";

/// `lock:backfill:<index>`: held by the node backfilling that search index.
pub fn backfill_lock(index: &str) -> String {
    format!("lock:backfill:{index}")
}

/// `lock:rehome:<index>`: held by the node re-homing search entries into that index after a
/// cluster's slots moved.
pub fn rehome_lock(index: &str) -> String {
    format!("lock:rehome:{index}")
}

/// `rehomed:<index>` → the name of the last move whose entries were re-homed into that index.
pub fn rehomed_mark(index: &str) -> String {
    format!("rehomed:{index}")
}

// Private channels, group conversations, roles and moderation. Every per-channel key carries the
// hash tag `{channel:<c>}` (the slot of the channel's stream `channel:<c>`), so one script can
// change a channel's members, roles, bans and stream together in one slot.

/// Set of the names of private channels and group conversations (the `channels` set holds only
/// public ones): for the admin overview and for name uniqueness.
pub const PRIVATE_CHANNELS: &str = "channels:private";

/// `info:{channel:<c>}`: hash of a channel's settings: `kind` (`private` / `group`, absent for a
/// public channel), `title`, `topic`, `owner`, `created_at`, `slow_mode_secs`.
pub fn channel_info(channel: &str) -> String {
    format!("info:{}", channel_tag(channel))
}

/// `roles:{channel:<c>}`: hash username → `owner` / `moderator` (absent: `member`).
pub fn roles(channel: &str) -> String {
    format!("roles:{}", channel_tag(channel))
}

/// `joined:{channel:<c>}`: hash username → when they became a member (unix ms).
pub fn joined(channel: &str) -> String {
    format!("joined:{}", channel_tag(channel))
}

/// `bans:{channel:<c>}`: hash username → `<until ms>|<reason>` (until 0: no end).
pub fn bans(channel: &str) -> String {
    format!("bans:{}", channel_tag(channel))
}

/// `mutes:{channel:<c>}`: hash username → until (unix ms; 0: no end).
pub fn mutes(channel: &str) -> String {
    format!("mutes:{}", channel_tag(channel))
}

/// `slowpost:{channel:<c>}`: hash username → their last post (unix ms), for slow mode.
pub fn slow_posts(channel: &str) -> String {
    format!("slowpost:{}", channel_tag(channel))
}

/// `deleted:{channel:<c>}:<ms>`: a deleted channel's stream, moved aside while its messages'
/// hashes are deleted.
pub fn deleted_stream(channel: &str, ms: i64) -> String {
    format!("deleted:{}:{ms}", channel_tag(channel))
}

/// Field of `user:<u>` set while an administrator has disabled the account.
pub const USER_DISABLED_FIELD: &str = "disabled";

/// `users:disabled`: set of the accounts administrators disabled (for the admin overview).
pub const DISABLED_USERS: &str = "users:disabled";

/// `nodesockets`: hash node id → `<sockets> <unix ms>`, each node's open sockets as it last
/// wrote them (the admin overview).
pub const NODE_SOCKETS: &str = "nodesockets";

// ---- the older layout: read where such data may still be, converted by `chatnode migrate` ----

/// Old names, before every key carried its channel's or user's hash tag.
pub mod legacy {
    /// The former global stream-ID generator (`"<ms>-<seq>"`), no longer written.
    pub const STREAM_IDS: &str = "ids:last";
    /// The former single online set (one slot for the whole fleet), now [`super::online_bucket`]s.
    pub const ONLINE: &str = "online";

    /// `message:<id>` (seed 003's loader and chatnode before the tagged layout).
    pub fn message(id: &str) -> String {
        format!("message:{id}")
    }
    /// `session:<hash>` of a token without a username.
    pub fn session(token_hash: &str) -> String {
        format!("session:{token_hash}")
    }
    pub fn user_sessions(username: &str) -> String {
        format!("sessions:{username}")
    }
    pub fn members(channel: &str) -> String {
        format!("members:{channel}")
    }
    pub fn memberships(username: &str) -> String {
        format!("memberships:{username}")
    }
    pub fn activity(channel: &str) -> String {
        format!("active:{channel}")
    }
    pub fn mentions(username: &str) -> String {
        format!("mentions:{username}")
    }
    pub fn audio(audio_id: &str) -> String {
        format!("audio:{audio_id}")
    }
    pub fn audio_info(audio_id: &str) -> String {
        format!("audioinfo:{audio_id}")
    }
}

/// The hash slot of a key as Redis Cluster computes it: CRC16 (XMODEM) of the key, or of the
/// first non-empty `{…}` in it, modulo 16384.
pub fn slot(key: &str) -> u16 {
    let b = key.as_bytes();
    let hashed = match b.iter().position(|&c| c == b'{') {
        Some(open) => match b[open + 1..].iter().position(|&c| c == b'}') {
            Some(len) if len > 0 => &b[open + 1..open + 1 + len],
            _ => b,
        },
        None => b,
    };
    crc16_xmodem(hashed) % 16384
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from CLUSTER KEYSLOT on Redis 7.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("123456789"), 12739);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("foo{}{bar}"), slot("foo{}{bar}"));
        assert_ne!(slot("foo{}{bar}"), slot("bar"));
        assert_eq!(slot("foo{{bar}}zap"), slot("{bar"));
        assert_eq!(slot("foo{bar}{zap}"), slot("bar"));
    }

    #[test]
    fn every_channel_key_is_in_the_channel_slot() {
        for c in ["general", "a-b_9", "dm:amy:zed", "x", "room-42"] {
            let anchor = slot(&channel(c));
            for key in [
                message(c, "1631623305083-0"),
                members(c),
                activity(c),
                post_once("amy", c, "client-1"),
                room_events(c),
                audio(c, "0123abcd"),
                audio_info(c, "0123abcd"),
                channel_info(c),
                roles(c),
                joined(c),
                bans(c),
                mutes(c),
                slow_posts(c),
                deleted_stream(c, 1),
                reactions(c, "1631623305083-0"),
                reactors(c, "1631623305083-0"),
                replies(c, "1631623305083-0"),
                tombstones(c),
            ] {
                assert_eq!(
                    slot(&key),
                    anchor,
                    "{key} is not in the slot of channel:{c}"
                );
            }
            assert_eq!(room_from_events(&room_events(c)), Some(c));
        }
    }

    #[test]
    fn every_user_key_is_in_the_user_slot() {
        for u in ["amy", "a.b-c_9", "zed", "user123"] {
            let anchor = slot(&user(u));
            for key in [
                session(u, "ab12"),
                user_sessions(u),
                login_failures_user(u),
                login_failures_pair(u, "203.0.113.9"),
                login_failures_pair(u, "2001:db8::1"),
                post_rate(u),
                memberships(u),
                presence(u),
                presence_nodes(u),
                mentions(u),
            ] {
                assert_eq!(slot(&key), anchor, "{key} is not in the slot of user:{u}");
            }
        }
    }

    #[test]
    fn online_buckets_spread_over_masters() {
        let buckets = online_buckets();
        assert_eq!(buckets.len(), usize::from(ONLINE_BUCKETS));
        // The slot ranges `redis-cli --cluster create` gives three masters.
        let thirds = [(0u16, 5460u16), (5461, 10922), (10923, 16383)];
        let per_master: Vec<usize> = thirds
            .iter()
            .map(|&(a, b)| {
                buckets
                    .iter()
                    .filter(|k| (a..=b).contains(&slot(k)))
                    .count()
            })
            .collect();
        assert_eq!(per_master, [12, 11, 9], "{buckets:?}");
        let mut slots: Vec<u16> = buckets.iter().map(|k| slot(k)).collect();
        slots.sort();
        slots.dedup();
        assert_eq!(slots.len(), buckets.len(), "two buckets share a slot");
        // Users go to their bucket, always the same one, and fill every bucket.
        assert_eq!(online("amy"), online("amy"));
        assert!(buckets.contains(&online("amy")));
        let mut used: Vec<u16> = (0..1000)
            .map(|i| online_bucket_of(&format!("user{i}")))
            .collect();
        used.sort();
        used.dedup();
        assert_eq!(used.len(), usize::from(ONLINE_BUCKETS));
        assert_ne!(online_bucket(0), legacy::ONLINE);
    }

    #[test]
    fn message_keys_and_refs_read_back() {
        assert_eq!(id_of_message_key(&message("dm:a:b", "5-1")), "5-1");
        assert_eq!(id_of_message_key(&legacy::message("5-1")), "5-1");
        let r = message_ref("dm:amy:zed", "5-1");
        assert_eq!(parse_message_ref(&r), Some(("dm:amy:zed", "5-1")));
        assert_eq!(parse_message_ref("5-1"), None);
    }
}
