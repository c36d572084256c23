//! Sign-in sessions: `session:<sha256 of token>` → `<username> <generation>` with a sliding TTL,
//! so a token works on every node and a logout ends it everywhere. The token itself is never
//! stored. A session is valid only while its generation is the user's current
//! `session_generation` (a field of `user:<username>`, 0 when missing; a bare `<username>` value
//! is generation 0): a password change raises it, ending every other session whether or not the
//! `sessions:<username>` index still lists it.
//! Also the failed-login counters that throttle password guessing: `loginfail:addr:<ip>`,
//! `loginfail:user:<username>` and `loginfail:pair:<username>:<ip>` (this address has failed for
//! this user); see docs/DESIGN.md, "Login throttling".

use base64::Engine;
use rand::RngCore;
use redis::AsyncCommands;
use sha2::{Digest, Sha256};

use super::{keys, Store};
use crate::error::{Error, Result};

/// A fresh 256-bit random token, base64url.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a token, hex: the only form in which a token reaches Redis.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Starts a session for `username` at the user's current generation and returns its token.
    pub async fn create_session(&self, username: &str) -> Result<String> {
        let token = new_token();
        let hash = token_hash(&token);
        let ttl = self.settings.auth.session_ttl_secs;
        let mut conn = self.conn().await?;
        let _: () = redis::Script::new(CREATE_SESSION_LUA)
            .key(keys::session(&hash))
            .key(keys::user_sessions(username))
            .key(keys::user(username))
            .arg(username)
            .arg(ttl)
            .arg(&hash)
            .invoke_async(&mut conn)
            .await?;
        Ok(token)
    }

    /// The user a token belongs to, sliding its expiry forward; `None` for a session of an
    /// earlier generation (it is removed).
    pub async fn resolve_session(&self, token: &str) -> Result<Option<String>> {
        if token.is_empty() || token.len() > 256 {
            return Ok(None);
        }
        let ttl = self.settings.auth.session_ttl_secs;
        let key = keys::session(&token_hash(token));
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
        if generation < current.unwrap_or(0) {
            let _: () = conn.del(&key).await?;
            return Ok(None);
        }
        Ok(Some(user.to_string()))
    }

    /// Ends one session.
    pub async fn revoke_session(&self, token: &str) -> Result<()> {
        self.revoke_session_hash(&token_hash(token)).await
    }

    /// Ends every session of a user except `keep` (a token hash): raises the user's session
    /// generation (moving `keep` to it), then deletes the sessions the index still lists.
    pub async fn revoke_other_sessions(&self, username: &str, keep: Option<&str>) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: i64 = redis::Script::new(NEW_GENERATION_LUA)
            .key(keys::user(username))
            .key(keys::session(keep.unwrap_or("")))
            .arg(username)
            .invoke_async(&mut conn)
            .await?;
        let hashes: Vec<String> = conn.smembers(keys::user_sessions(username)).await?;
        let doomed: Vec<&String> = hashes.iter().filter(|h| Some(h.as_str()) != keep).collect();
        if doomed.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for h in &doomed {
            pipe.del(keys::session(h))
                .srem(keys::user_sessions(username), *h);
        }
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// Counts a login attempt before its password is checked, or refuses it (`TooManyAttempts`)
    /// while the address, or the user for an address that has failed for them, is over the
    /// limit. One script, so parallel attempts cannot all pass the check.
    pub async fn reserve_login_attempt(&self, username: &str, addr: &str) -> Result<()> {
        let auth = &self.settings.auth;
        let mut conn = self.conn().await?;
        let script = redis::Script::new(RESERVE_LOGIN_LUA);
        let wait: u64 = login_keys(&script, username, addr)
            .arg(auth.max_failed_logins)
            .arg(auth.failed_login_window_secs)
            .invoke_async(&mut conn)
            .await?;
        if wait > 0 {
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
        let script = redis::Script::new(RELEASE_LOGIN_LUA);
        let _: i64 = login_keys(&script, username, addr)
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
-- KEYS[1] session:<hash>, KEYS[2] sessions:<user>, KEYS[3] user:<user>;
-- ARGV[1] username, ARGV[2] ttl, ARGV[3] token hash. The generation is read in the same step,
-- so a session started during a password change belongs to one side of it.
local generation = redis.call('HGET', KEYS[3], 'session_generation') or '0'
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. generation, 'EX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"#;

const NEW_GENERATION_LUA: &str = r#"
-- KEYS[1] user:<user>, KEYS[2] session:<hash> kept; ARGV[1] username.
local generation = redis.call('HINCRBY', KEYS[1], 'session_generation', 1)
local kept = redis.call('GET', KEYS[2])
if kept and (kept == ARGV[1] or string.sub(kept, 1, #ARGV[1] + 1) == ARGV[1] .. ' ') then
  redis.call('SET', KEYS[2], ARGV[1] .. ' ' .. generation, 'KEEPTTL')
end
return generation
"#;

/// The three failed-login counters of an attempt, as script keys.
fn login_keys<'a>(
    script: &'a redis::Script,
    username: &str,
    addr: &str,
) -> redis::ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    invocation
        .key(keys::login_failures("user", username))
        .key(keys::login_failures("addr", addr))
        .key(keys::login_failures("pair", &format!("{username}:{addr}")));
    invocation
}

const RESERVE_LOGIN_LUA: &str = r#"
-- KEYS[1] loginfail:user:<user>, KEYS[2] loginfail:addr:<ip>, KEYS[3] loginfail:pair:<user>:<ip>;
-- ARGV[1] limit, ARGV[2] window in seconds. Returns 0 (attempt counted) or seconds to wait.
local limit = tonumber(ARGV[1])
local function wait(key)
  if tonumber(redis.call('GET', key) or '0') >= limit then
    return math.max(redis.call('TTL', key), 1)
  end
  return 0
end
local w = wait(KEYS[2])
-- The user's own limit only holds against addresses that have failed for this user.
if w == 0 and redis.call('EXISTS', KEYS[3]) == 1 then w = wait(KEYS[1]) end
if w > 0 then return w end
for i = 1, 3 do
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[2])
end
return 0
"#;

const RELEASE_LOGIN_LUA: &str = r#"
-- KEYS as in the reserve script; ARGV[1] 1 after a right password. Counters that expired
-- meanwhile are left alone (DECR would recreate them without a TTL).
for i = 1, 3 do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then redis.call('DECR', KEYS[i]) end
end
if ARGV[1] == '1' or tonumber(redis.call('GET', KEYS[3]) or '0') <= 0 then
  redis.call('DEL', KEYS[3])
end
return 1
"#;

impl Store {
    /// Ends a session known by its token hash (a socket's `signOut`).
    pub async fn revoke_session_hash(&self, hash: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let value: Option<String> = conn.get(keys::session(hash)).await?;
        let mut pipe = redis::pipe();
        pipe.del(keys::session(hash));
        if let Some((u, _)) = value.as_deref().map(parse_session) {
            pipe.srem(keys::user_sessions(u), hash);
        }
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }
}

impl Store {
    /// Whether the session of a token hash is still valid (exists and is of the user's current
    /// generation), without sliding its expiry: a socket's session checked again after the
    /// bridge reconnected, since a revocation published meanwhile was not heard.
    pub async fn session_alive(&self, hash: &str) -> Result<bool> {
        let mut conn = self.shared();
        let value: Option<String> = conn.get(keys::session(hash)).await?;
        let Some((user, generation)) = value.as_deref().map(parse_session) else {
            return Ok(false);
        };
        let current: Option<u64> = conn.hget(keys::user(user), SESSION_GENERATION).await?;
        Ok(generation >= current.unwrap_or(0))
    }
}
