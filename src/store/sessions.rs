//! Sign-in sessions: `session:{user:<u>}:<sha256 of token>` → `<username> <generation>` with a
//! sliding TTL, so a token works on every node and a logout ends it everywhere. The token itself
//! is never stored. A token is `<256 random bits, base64url>.<username>`: it names its user, so
//! its session lives in the user's slot (see [`super::keys`]) and one script reads it, slides it
//! and checks it against the user's generation in one round trip. Tokens of the older form (no
//! `.`) are still honoured under `session:<hash>` until they expire.
//!
//! A session is valid only while its generation is the user's current `session_generation` (a
//! field of `user:<username>`, 0 when missing; a bare `<username>` value is generation 0): a
//! password change raises it, ending every other session whether or not the
//! `sessions:{user:<u>}` index still lists it.
//! Also the failed-login counters that throttle password guessing: `loginfail:addr:<ip>` (its
//! own slot), `loginfail:{user:<u>}` and `loginfail:{user:<u>}:<ip>` (this address has failed for
//! this user); see docs/DESIGN.md, "Login throttling".

use base64::Engine;
use rand::RngCore;
use redis::AsyncCommands;
use sha2::{Digest, Sha256};

use super::{keys, Store};
use crate::error::{Error, Result};

/// A fresh token for `username`: 256 random bits, base64url, then `.` and the username.
pub fn new_token(username: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let random = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    format!("{random}.{username}")
}

/// The username a token names (`None` for a token of the older form). The random part is
/// base64url, which has no `.`; usernames may.
pub fn token_user(token: &str) -> Option<&str> {
    token
        .split_once('.')
        .map(|(_, user)| user)
        .filter(|u| !u.is_empty() && !u.contains(['{', '}']))
}

/// SHA-256 of a token, hex: the only form in which a token reaches Redis.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Starts a session for `username` at the user's current generation and returns its token.
    pub async fn create_session(&self, username: &str) -> Result<String> {
        let token = new_token(username);
        let hash = token_hash(&token);
        let ttl = self.settings.auth.session_ttl_secs;
        let mut conn = self.conn().await?;
        let _: () = redis::Script::new(CREATE_SESSION_LUA)
            .key(keys::session(username, &hash))
            .key(keys::user_sessions(username))
            .key(keys::user(username))
            .arg(username)
            .arg(ttl)
            .arg(&hash)
            .arg(keys::session(username, ""))
            .invoke_async(&mut conn)
            .await?;
        Ok(token)
    }

    /// The user a token belongs to, sliding its expiry forward; `None` for a session of an
    /// earlier generation (it is removed). One round trip.
    pub async fn resolve_session(&self, token: &str) -> Result<Option<String>> {
        if token.is_empty() || token.len() > 256 {
            return Ok(None);
        }
        let ttl = self.settings.auth.session_ttl_secs;
        let hash = token_hash(token);
        let mut conn = self.shared();
        let Some(user) = token_user(token) else {
            return self.resolve_legacy_session(&hash).await;
        };
        let found: Option<String> = RESOLVE_SCRIPT
            .key(keys::session(user, &hash))
            .key(keys::user(user))
            .arg(ttl)
            .arg(user)
            .invoke_async(&mut conn)
            .await?;
        Ok(found)
    }

    /// A token of the older form: `session:<hash>`, then the user's generation.
    async fn resolve_legacy_session(&self, hash: &str) -> Result<Option<String>> {
        let ttl = self.settings.auth.session_ttl_secs;
        let key = keys::legacy::session(hash);
        let mut conn = self.shared();
        let value: Option<String> = redis::cmd("GETEX")
            .arg(&key)
            .arg("EX")
            .arg(ttl)
            .query_async(&mut conn)
            .await?;
        let Some((user, generation)) = value.as_deref().map(parse_session) else {
            return Ok(None);
        };
        let current: Option<u64> = conn.hget(keys::user(user), SESSION_GENERATION).await?;
        if store_disabled(&mut conn, user).await? {
            return Ok(None);
        }
        if generation < current.unwrap_or(0) {
            let _: () = conn.del(&key).await?;
            return Ok(None);
        }
        Ok(Some(user.to_string()))
    }

    /// Ends one session.
    pub async fn revoke_session(&self, token: &str) -> Result<()> {
        let hash = token_hash(token);
        let user = match token_user(token) {
            Some(u) => Some(u.to_string()),
            None => {
                let mut conn = self.conn().await?;
                let value: Option<String> = conn.get(keys::legacy::session(&hash)).await?;
                value.as_deref().map(|v| parse_session(v).0.to_string())
            }
        };
        match user {
            Some(u) => self.revoke_session_hash(&u, &hash).await,
            None => Ok(()),
        }
    }

    /// Ends every session of a user except `keep` (a token hash): raises the user's session
    /// generation (moving `keep` to it), then deletes the sessions the index still lists.
    pub async fn revoke_other_sessions(&self, username: &str, keep: Option<&str>) -> Result<()> {
        let mut conn = self.conn().await?;
        let generation: i64 = redis::Script::new(NEW_GENERATION_LUA)
            .key(keys::user(username))
            .key(keys::session(username, keep.unwrap_or("")))
            .arg(username)
            .invoke_async(&mut conn)
            .await?;
        if let Some(keep) = keep {
            // A kept session of the older form is in a slot of its own.
            let _: i64 = redis::Script::new(KEEP_SESSION_LUA)
                .key(keys::legacy::session(keep))
                .arg(username)
                .arg(generation)
                .invoke_async(&mut conn)
                .await?;
        }
        let (hashes, old_hashes): (Vec<String>, Vec<String>) = redis::pipe()
            .smembers(keys::user_sessions(username))
            .smembers(keys::legacy::user_sessions(username))
            .query_async(&mut conn)
            .await?;
        let doomed: Vec<&String> = hashes
            .iter()
            .chain(&old_hashes)
            .filter(|h| Some(h.as_str()) != keep)
            .collect();
        if doomed.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for h in &doomed {
            pipe.del(keys::session(username, h))
                .del(keys::legacy::session(h))
                .srem(keys::user_sessions(username), *h)
                .srem(keys::legacy::user_sessions(username), *h);
        }
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// Counts a login attempt before its password is checked, or refuses it (`TooManyAttempts`)
    /// while the address, or the user for an address that has failed for them, is over the
    /// limit. Two scripts, each in one slot (the address's, then the user's), so parallel
    /// attempts cannot all pass either check; an attempt the second refuses is given back to
    /// the first.
    pub async fn reserve_login_attempt(&self, username: &str, addr: &str) -> Result<()> {
        let auth = &self.settings.auth;
        let mut conn = self.conn().await?;
        let addr_key = keys::login_failures_addr(addr);
        let wait: u64 = redis::Script::new(RESERVE_ADDR_LUA)
            .key(&addr_key)
            .arg(auth.max_failed_logins)
            .arg(auth.failed_login_window_secs)
            .invoke_async(&mut conn)
            .await?;
        if wait > 0 {
            return Err(Error::TooManyAttempts { retry_after: wait });
        }
        let wait: u64 = redis::Script::new(RESERVE_USER_LUA)
            .key(keys::login_failures_user(username))
            .key(keys::login_failures_pair(username, addr))
            .arg(auth.max_failed_logins)
            .arg(auth.failed_login_window_secs)
            .invoke_async(&mut conn)
            .await?;
        if wait > 0 {
            let _: i64 = redis::Script::new(GIVE_BACK_LUA)
                .key(&addr_key)
                .invoke_async(&mut conn)
                .await?;
            return Err(Error::TooManyAttempts { retry_after: wait });
        }
        Ok(())
    }

    /// Gives back an attempt that was not judged wrong; after a right password (`signed_in`)
    /// also forgets this address's earlier failures for the user.
    pub async fn release_login_attempt(
        &self,
        username: &str,
        addr: &str,
        signed_in: bool,
    ) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: i64 = redis::Script::new(GIVE_BACK_LUA)
            .key(keys::login_failures_addr(addr))
            .invoke_async(&mut conn)
            .await?;
        let _: i64 = redis::Script::new(RELEASE_USER_LUA)
            .key(keys::login_failures_user(username))
            .key(keys::login_failures_pair(username, addr))
            .arg(if signed_in { 1 } else { 0 })
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }
}

/// The field of `user:<username>` holding the current session generation.
const SESSION_GENERATION: &str = "session_generation";

/// A session value's username and generation.
fn parse_session(value: &str) -> (&str, u64) {
    match value.split_once(' ') {
        Some((user, generation)) => (user, generation.parse().unwrap_or(0)),
        None => (value, 0),
    }
}

const CREATE_SESSION_LUA: &str = r#"
-- KEYS[1] session:{user:<u>}:<hash>, KEYS[2] sessions:{user:<u>}, KEYS[3] user:<u>;
-- ARGV[1] username, ARGV[2] ttl, ARGV[3] token hash, ARGV[4] the prefix of the user's session
-- keys (`session:{user:<u>}:`, the slot of KEYS). The generation is read in the same step, so a
-- session started during a password change belongs to one side of it.
local generation = redis.call('HGET', KEYS[3], 'session_generation') or '0'
-- The index would keep the hash of every session that expired by itself: each sign-in drops up
-- to 200 such hashes, so the index holds about the live sessions only.
for _, h in ipairs(redis.call('SRANDMEMBER', KEYS[2], 200)) do
  if redis.call('EXISTS', ARGV[4] .. h) == 0 then redis.call('SREM', KEYS[2], h) end
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. generation, 'EX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"#;

/// KEYS[1] session:{user:<u>}:<hash>, KEYS[2] user:<u>; ARGV[1] ttl, ARGV[2] the token's user.
/// Slides the session and answers its user, or nothing (no session, another user's, or one of an
/// earlier generation, which is removed).
const RESOLVE_LUA: &str = r#"
local v = redis.call('GETEX', KEYS[1], 'EX', ARGV[1])
if not v then return false end
local user, generation = string.match(v, '^(%S+) (%d+)$')
if not user then user, generation = v, '0' end
if user ~= ARGV[2] then return false end
local current = tonumber(redis.call('HGET', KEYS[2], 'session_generation') or '0')
if tonumber(generation) < current then
  redis.call('DEL', KEYS[1])
  return false
end
-- An account an administrator disabled signs nobody in (its sessions were revoked; this also
-- refuses one made while it was being disabled).
if redis.call('HEXISTS', KEYS[2], 'disabled') == 1 then return false end
return user
"#;

/// Whether an administrator disabled the account (`keys::USER_DISABLED_FIELD`, which
/// [`RESOLVE_LUA`] checks by its name).
async fn store_disabled(conn: &mut super::conn::Conn, user: &str) -> Result<bool> {
    Ok(conn
        .hexists(keys::user(user), keys::USER_DISABLED_FIELD)
        .await?)
}

static RESOLVE_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(RESOLVE_LUA));

const NEW_GENERATION_LUA: &str = r#"
-- KEYS[1] user:<u>, KEYS[2] session:{user:<u>}:<hash> kept; ARGV[1] username.
local generation = redis.call('HINCRBY', KEYS[1], 'session_generation', 1)
local kept = redis.call('GET', KEYS[2])
if kept and (kept == ARGV[1] or string.sub(kept, 1, #ARGV[1] + 1) == ARGV[1] .. ' ') then
  redis.call('SET', KEYS[2], ARGV[1] .. ' ' .. generation, 'KEEPTTL')
end
return generation
"#;

/// Moves a kept session of the older form to the new generation. KEYS[1] session:<hash>;
/// ARGV[1] username, ARGV[2] generation.
const KEEP_SESSION_LUA: &str = r#"
local kept = redis.call('GET', KEYS[1])
if kept and (kept == ARGV[1] or string.sub(kept, 1, #ARGV[1] + 1) == ARGV[1] .. ' ') then
  redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'KEEPTTL')
  return 1
end
return 0
"#;

const RESERVE_ADDR_LUA: &str = r#"
-- KEYS[1] loginfail:addr:<ip>; ARGV[1] limit, ARGV[2] window in seconds.
-- Returns 0 (attempt counted) or seconds to wait.
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then
  return math.max(redis.call('TTL', KEYS[1]), 1)
end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 0
"#;

const RESERVE_USER_LUA: &str = r#"
-- KEYS[1] loginfail:{user:<u>}, KEYS[2] loginfail:{user:<u>}:<ip>; ARGV as RESERVE_ADDR.
-- The user's own limit only holds against addresses that have failed for this user.
if redis.call('EXISTS', KEYS[2]) == 1
  and tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then
  return math.max(redis.call('TTL', KEYS[1]), 1)
end
for i = 1, 2 do
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[2])
end
return 0
"#;

/// Takes one back from a counter; one that expired meanwhile is left alone (DECR would recreate
/// it without a TTL).
const GIVE_BACK_LUA: &str = r#"
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
return 1
"#;

const RELEASE_USER_LUA: &str = r#"
-- KEYS as RESERVE_USER; ARGV[1] 1 after a right password.
for i = 1, 2 do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then redis.call('DECR', KEYS[i]) end
end
if ARGV[1] == '1' or tonumber(redis.call('GET', KEYS[2]) or '0') <= 0 then
  redis.call('DEL', KEYS[2])
end
return 1
"#;

impl Store {
    /// Ends a session of `username` known by its token hash (a socket's `signOut`).
    pub async fn revoke_session_hash(&self, username: &str, hash: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: () = redis::pipe()
            .del(keys::session(username, hash))
            .del(keys::legacy::session(hash))
            .srem(keys::user_sessions(username), hash)
            .srem(keys::legacy::user_sessions(username), hash)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Whether the session of a token hash is still valid (exists and is of the user's current
    /// generation), without sliding its expiry: a socket's session checked again after the
    /// bridge reconnected, since a revocation published meanwhile was not heard.
    pub async fn session_alive(&self, username: &str, hash: &str) -> Result<bool> {
        let mut conn = self.shared();
        let mut value: Option<String> = conn.get(keys::session(username, hash)).await?;
        if value.is_none() {
            value = conn.get(keys::legacy::session(hash)).await?;
        }
        let Some((user, generation)) = value.as_deref().map(parse_session) else {
            return Ok(false);
        };
        let current: Option<u64> = conn.hget(keys::user(user), SESSION_GENERATION).await?;
        Ok(generation >= current.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_user() {
        let t = new_token("a.b-c_9");
        assert_eq!(token_user(&t), Some("a.b-c_9"));
        assert_eq!(t.split_once('.').unwrap().0.len(), 43);
        assert_eq!(token_user("oldstyleTokenWithoutDot-_"), None);
        assert_ne!(new_token("amy"), new_token("amy"));
    }
}
