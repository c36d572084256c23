//! Sign-in sessions: `session:<sha256 of token>` → username with a sliding TTL, so a token works
//! on every node and a logout ends it everywhere. The token itself is never stored.
//! Also the failed-login counters that throttle password guessing.

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
    /// Starts a session for `username` and returns its token.
    pub async fn create_session(&self, username: &str) -> Result<String> {
        let token = new_token();
        let hash = token_hash(&token);
        let ttl = self.settings.auth.session_ttl_secs;
        let mut conn = self.conn().await?;
        let _: () = redis::pipe()
            .atomic()
            .set_ex(keys::session(&hash), username, ttl)
            .sadd(keys::user_sessions(username), &hash)
            .expire(keys::user_sessions(username), ttl as i64)
            .query_async(&mut conn)
            .await?;
        Ok(token)
    }

    /// The user a token belongs to, sliding its expiry forward.
    pub async fn resolve_session(&self, token: &str) -> Result<Option<String>> {
        if token.is_empty() || token.len() > 256 {
            return Ok(None);
        }
        let ttl = self.settings.auth.session_ttl_secs;
        let mut conn = self.conn().await?;
        let user: Option<String> = redis::cmd("GETEX")
            .arg(keys::session(&token_hash(token)))
            .arg("EX")
            .arg(ttl)
            .query_async(&mut conn)
            .await?;
        Ok(user)
    }

    /// Ends one session.
    pub async fn revoke_session(&self, token: &str) -> Result<()> {
        self.revoke_session_hash(&token_hash(token)).await
    }

    /// Ends every session of a user except `keep` (a token hash).
    pub async fn revoke_other_sessions(&self, username: &str, keep: Option<&str>) -> Result<()> {
        let mut conn = self.conn().await?;
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

    /// Refuses a login attempt while the user or the address has too many recent failures.
    pub async fn check_login_allowed(&self, username: &str, addr: &str) -> Result<()> {
        let auth = &self.settings.auth;
        let mut conn = self.conn().await?;
        let (u, a): (Option<u32>, Option<u32>) = redis::pipe()
            .get(keys::login_failures("user", username))
            .get(keys::login_failures("addr", addr))
            .query_async(&mut conn)
            .await?;
        let over = [(u, "user", username), (a, "addr", addr)]
            .into_iter()
            .find(|(n, _, _)| n.unwrap_or(0) >= auth.max_failed_logins);
        if let Some((_, kind, who)) = over {
            let ttl: i64 = conn.ttl(keys::login_failures(kind, who)).await?;
            return Err(Error::TooManyAttempts {
                retry_after: ttl.max(1) as u64,
            });
        }
        Ok(())
    }

    /// Counts a failed login against the user and the address.
    pub async fn record_login_failure(&self, username: &str, addr: &str) -> Result<()> {
        let window = self.settings.auth.failed_login_window_secs as i64;
        let mut conn = self.conn().await?;
        let _: () = redis::pipe()
            .incr(keys::login_failures("user", username), 1)
            .expire(keys::login_failures("user", username), window)
            .incr(keys::login_failures("addr", addr), 1)
            .expire(keys::login_failures("addr", addr), window)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Clears the user's failure count after a good login.
    pub async fn clear_login_failures(&self, username: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: () = conn.del(keys::login_failures("user", username)).await?;
        Ok(())
    }
}

impl Store {
    /// Ends a session known by its token hash (a socket's `signOut`).
    pub async fn revoke_session_hash(&self, hash: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let user: Option<String> = conn.get(keys::session(hash)).await?;
        let mut pipe = redis::pipe();
        pipe.del(keys::session(hash));
        if let Some(u) = &user {
            pipe.srem(keys::user_sessions(u), hash);
        }
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }
}
