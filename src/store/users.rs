//! Users and profiles: `user:<username>` hashes (seed 003's fields plus chatnode's), the
//! `usernames` set, and the `uuid:<uuid>` index seed 004's protocol needs.
//!
//! Passwords are hashed with argon2id and never leave this module except as a verdict.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, Semaphore};

use super::{keys, Store};
use crate::error::{Error, Result};
use crate::settings::Auth;

/// A point on the map.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

impl Location {
    /// Rejects impossible coordinates.
    pub fn validate(&self) -> Result<()> {
        if !(-90.0..=90.0).contains(&self.lat) || !(-180.0..=180.0).contains(&self.lon) {
            return Err(Error::body(
                "location: lat must be within ±90 and lon within ±180",
            ));
        }
        Ok(())
    }
}

/// What others may see of a user. Never holds a secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Profile {
    pub username: String,
    pub uuid: String,
    pub firstname: String,
    pub lastname: String,
    pub city: String,
    pub country: String,
    pub hobbies: Vec<String>,
    pub location: Option<Location>,
    pub created_at: i64,
}

/// Profile fields a user may set.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub hobbies: Option<Vec<String>>,
    pub location: Option<Location>,
}

impl ProfileUpdate {
    /// Checks lengths and coordinates.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("firstname", &self.firstname),
            ("lastname", &self.lastname),
            ("city", &self.city),
            ("country", &self.country),
        ] {
            if let Some(v) = v {
                if v.chars().count() > 100 {
                    return Err(Error::body(format!("{name}: at most 100 characters")));
                }
            }
        }
        if let Some(h) = &self.hobbies {
            if h.len() > 20
                || h.iter()
                    .any(|x| x.trim().is_empty() || x.chars().count() > 40 || x.contains(','))
            {
                return Err(Error::body(
                    "hobbies: at most 20, each 1-40 characters without commas",
                ));
            }
        }
        if let Some(l) = &self.location {
            l.validate()?;
        }
        Ok(())
    }

    /// The hash fields this update writes.
    fn fields(&self) -> Vec<(&'static str, String)> {
        let mut f = Vec::new();
        if let Some(v) = &self.firstname {
            f.push(("firstname", v.clone()));
        }
        if let Some(v) = &self.lastname {
            f.push(("lastname", v.clone()));
        }
        if let Some(v) = &self.city {
            f.push(("city", v.clone()));
        }
        if let Some(v) = &self.country {
            f.push(("country", v.clone()));
        }
        if let Some(h) = &self.hobbies {
            let h: Vec<String> = h.iter().map(|x| x.trim().to_lowercase()).collect();
            f.push(("hobbies", h.join(",")));
        }
        if let Some(l) = &self.location {
            f.push(("location", format!("{},{}", l.lon, l.lat)));
        }
        f
    }
}

/// Lowercases a username and checks it: 3-32 of `[a-z0-9_.-]`.
pub fn normalize_username(raw: &str) -> Result<String> {
    let name = raw.trim().to_lowercase();
    let ok = (3..=32).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
    if ok {
        Ok(name)
    } else {
        Err(Error::InvalidUsername(
            "usernames are 3-32 characters of a-z, 0-9, _, . and -".into(),
        ))
    }
}

/// Checks a password's length: 8-1024 characters.
pub fn check_password(password: &str) -> Result<()> {
    if (8..=1024).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(Error::WeakPassword)
    }
}

fn argon2(auth: &Auth) -> Result<Argon2<'static>> {
    let params = Params::new(
        auth.argon2_memory_kib,
        auth.argon2_iterations,
        auth.argon2_parallelism,
        None,
    )
    .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password to an argon2id PHC string (CPU-heavy: call off the event loop).
pub fn hash_password(auth: &Auth, password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2(auth)?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("argon2: {e}")))
}

/// Checks a password against a PHC string; a missing hash still costs one verification, so an
/// unknown user and a wrong password take about the same time.
pub fn verify_password(auth: &Auth, password: &str, phc: Option<&str>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy =
        DUMMY.get_or_init(|| hash_password(auth, "not a real password").unwrap_or_default());
    let (phc, real) = match phc {
        Some(p) if !p.is_empty() => (p, true),
        _ => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(a) = argon2(auth) else {
        return false;
    };
    a.verify_password(password.as_bytes(), &parsed).is_ok() && real
}

/// Where passwords are hashed: threads of its own, as many as `auth.argon2_concurrency`, shared
/// by the whole process (a deployed node is one process; the first node started sets the size).
/// A burst of sign-ins waits for a slot instead of holding argon2's memory many times over.
struct Argon2Pool {
    slots: Arc<Semaphore>,
    jobs: Mutex<mpsc::Sender<Box<dyn FnOnce() + Send>>>,
    wait: Duration,
}

static ARGON2_POOL: OnceLock<Argon2Pool> = OnceLock::new();

/// Above this size glibc always maps allocations fresh and unmaps them when freed. Fixing it also
/// stops glibc from raising it (and the trim threshold with it) after each freed argon2 buffer,
/// which kept ~2 x argon2 memory per malloc arena resident long after a burst.
const MMAP_THRESHOLD_BYTES: i32 = 1 << 20;

impl Argon2Pool {
    fn start(auth: &Auth) -> Self {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes allocator tuning; it is safe to call at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        }
        let (tx, rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..auth.argon2_concurrency {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        // A panicking job drops its answer (the caller gets an error), not the thread.
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(_) => return,
                    }
                });
            if let Err(e) = spawned {
                log::error!("cannot start a password hashing thread: {e}");
            }
        }
        Argon2Pool {
            slots: Arc::new(Semaphore::new(auth.argon2_concurrency)),
            jobs: Mutex::new(tx),
            wait: Duration::from_millis(auth.argon2_wait_ms),
        }
    }
}

/// Runs password hashing or verification on the argon2 threads, waiting at most
/// `auth.argon2_wait_ms` for a free one; then `Busy`.
pub async fn with_argon2<T: Send + 'static>(
    auth: &Auth,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let pool = ARGON2_POOL.get_or_init(|| Argon2Pool::start(auth));
    let slot = tokio::time::timeout(pool.wait, pool.slots.clone().acquire_owned())
        .await
        .map_err(|_| Error::Busy { retry_after: 1 })?
        .map_err(|e| Error::Internal(format!("argon2 slots: {e}")))?;
    let (done, result) = oneshot::channel();
    // The slot travels with the job, so it is freed when the hash ends, even if the request
    // that asked for it has gone away.
    let job = Box::new(move || {
        let _ = done.send(f());
        drop(slot);
    });
    pool.jobs
        .lock()
        .map_err(|_| Error::Internal("argon2 queue poisoned".into()))?
        .send(job)
        .map_err(|_| Error::Internal("argon2 threads are gone".into()))?;
    result
        .await
        .map_err(|_| Error::Internal("a password hashing job failed".into()))
}

/// A new account.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub profile: ProfileUpdate,
}

/// KEYS[1] user:<u>; ARGV: field/value pairs. Creates the user hash unless it exists: exactly one
/// of two concurrent registrations of a name wins (the hash is the user's slot's anchor; the
/// `usernames` set and the `uuid:<uuid>` index, in slots of their own, are written after it).
const REGISTER_LUA: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"#;

impl Store {
    /// Creates a user; `UsernameTaken` when the name exists.
    pub async fn create_user(&self, user: &NewUser) -> Result<Profile> {
        let uuid = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        let mut args: Vec<String> = Vec::new();
        let mut push = |k: &str, v: String| {
            args.push(k.to_string());
            args.push(v);
        };
        push("username", user.username.clone());
        push("uuid", uuid.clone());
        push("password_hash", user.password_hash.clone());
        push("created_at", now.to_string());
        for f in ["firstname", "lastname", "city", "country"] {
            push(f, String::new());
        }
        for (k, v) in user.profile.fields() {
            push(k, v);
        }
        let mut conn = self.conn().await?;
        // A name seed 003's loader listed without a hash is taken too.
        let listed: bool = conn.sismember(keys::USERNAMES, &user.username).await?;
        if listed {
            return Err(Error::UsernameTaken);
        }
        let created: i64 = redis::Script::new(REGISTER_LUA)
            .key(keys::user(&user.username))
            .arg(&args)
            .invoke_async(&mut conn)
            .await?;
        if created == 1 {
            let _: () = redis::pipe()
                .sadd(keys::USERNAMES, &user.username)
                .ignore()
                .set(keys::user_by_uuid(&uuid), &user.username)
                .ignore()
                .query_async(&mut conn)
                .await?;
        }
        // Never hold a pooled connection across another call that takes one: with every
        // connection held that way at once, the pool would wait on itself forever.
        drop(conn);
        if created == 0 {
            return Err(Error::UsernameTaken);
        }
        self.index_user(&user.username).await;
        self.profile(&user.username)
            .await?
            .ok_or(Error::UserNotFound)
    }

    /// Whether a username is free.
    pub async fn username_available(&self, username: &str) -> Result<bool> {
        let mut conn = self.conn().await?;
        let (member, exists): (bool, bool) = redis::pipe()
            .sismember(keys::USERNAMES, username)
            .exists(keys::user(username))
            .query_async(&mut conn)
            .await?;
        Ok(!member && !exists)
    }

    /// A user's profile, or `None`. Users loaded by seed 003's loader get a UUID on first read.
    pub async fn profile(&self, username: &str) -> Result<Option<Profile>> {
        let mut conn = self.conn().await?;
        let mut h: HashMap<String, String> = conn.hgetall(keys::user(username)).await?;
        drop(conn);
        if h.is_empty() {
            return Ok(None);
        }
        if h.get("uuid").is_none_or(|u| u.is_empty()) {
            let uuid = self.ensure_uuid(username).await?;
            h.insert("uuid".into(), uuid);
        }
        Ok(Some(profile_from_hash(username, &h)))
    }

    /// Gives a user without one (seed 003's loader writes none) a UUID, once.
    pub async fn ensure_uuid(&self, username: &str) -> Result<String> {
        let mut conn = self.conn().await?;
        let fresh = uuid::Uuid::new_v4().to_string();
        let set: bool = conn.hset_nx(keys::user(username), "uuid", &fresh).await?;
        let uuid: String = if set {
            fresh
        } else {
            conn.hget(keys::user(username), "uuid").await?
        };
        let _: () = conn.set(keys::user_by_uuid(&uuid), username).await?;
        Ok(uuid)
    }

    /// The username behind a UUID.
    pub async fn username_by_uuid(&self, uuid: &str) -> Result<Option<String>> {
        let mut conn = self.conn().await?;
        Ok(conn.get(keys::user_by_uuid(uuid)).await?)
    }

    /// UUIDs of many users in one round trip (missing ones are assigned).
    pub async fn uuids(&self, usernames: &[String]) -> Result<HashMap<String, String>> {
        if usernames.is_empty() {
            return Ok(HashMap::new());
        }
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        for u in usernames {
            pipe.hget(keys::user(u), "uuid");
        }
        let found: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
        drop(conn);
        let mut out = HashMap::with_capacity(usernames.len());
        for (u, id) in usernames.iter().zip(found) {
            let id = match id {
                Some(id) if !id.is_empty() => id,
                _ => self.ensure_uuid(u).await?,
            };
            out.insert(u.clone(), id);
        }
        Ok(out)
    }

    /// The stored password hash, if the user exists.
    pub async fn password_hash(&self, username: &str) -> Result<Option<String>> {
        let mut conn = self.conn().await?;
        Ok(conn.hget(keys::user(username), "password_hash").await?)
    }

    /// Replaces the password hash.
    pub async fn set_password_hash(&self, username: &str, phc: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: () = conn
            .hset(keys::user(username), "password_hash", phc)
            .await?;
        Ok(())
    }

    /// Applies a profile update and returns the new profile.
    pub async fn update_profile(&self, username: &str, update: &ProfileUpdate) -> Result<Profile> {
        let fields = update.fields();
        if !fields.is_empty() {
            let mut conn = self.conn().await?;
            let _: () = conn.hset_multiple(keys::user(username), &fields).await?;
            drop(conn);
            self.index_user(username).await;
        }
        self.profile(username).await?.ok_or(Error::UserNotFound)
    }

    /// Every username, sorted.
    pub async fn all_usernames(&self) -> Result<Vec<String>> {
        let mut conn = self.conn().await?;
        let mut names: Vec<String> = conn.smembers(keys::USERNAMES).await?;
        names.sort();
        Ok(names)
    }

    /// Adds a user hash to `idx:users` where RediSearch 1.x needs it by hand.
    pub async fn index_user(&self, username: &str) {
        self.index_hash(keys::IDX_USERS, &keys::user(username))
            .await;
    }

    /// `FT.ADDHASH index key 1.0 REPLACE` on RediSearch 1.x; nothing on 2.x (prefix indexing).
    pub async fn index_hash(&self, index: &str, key: &str) {
        let Some(v) = self.search else { return };
        if !v.needs_addhash() {
            return;
        }
        let Ok(mut conn) = self.conn().await else {
            return;
        };
        let index = self.index_for(index, key);
        let r: redis::RedisResult<redis::Value> = super::posting::ADDHASH_SCRIPT
            .key(&index)
            .arg(key)
            .arg("REPLACE")
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = r {
            log::warn!("indexing {key} in {index}: {e}");
        }
    }
}

/// Builds a profile from a user hash (secrets are simply not read).
pub fn profile_from_hash(username: &str, h: &HashMap<String, String>) -> Profile {
    let get = |k: &str| h.get(k).cloned().unwrap_or_default();
    let location = h.get("location").and_then(|s| {
        let (lon, lat) = s.split_once(',')?;
        Some(Location {
            lat: lat.trim().parse().ok()?,
            lon: lon.trim().parse().ok()?,
        })
    });
    Profile {
        username: h
            .get("username")
            .cloned()
            .unwrap_or_else(|| username.to_string()),
        uuid: get("uuid"),
        firstname: get("firstname"),
        lastname: get("lastname"),
        city: get("city"),
        country: get("country"),
        hobbies: h
            .get("hobbies")
            .map(|s| {
                s.split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        location,
        created_at: get("created_at").parse().unwrap_or(0),
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_checked() {
        assert_eq!(normalize_username("Wasim").unwrap(), "wasim");
        assert_eq!(normalize_username("a.b-c_9").unwrap(), "a.b-c_9");
        assert!(normalize_username("ab").is_err());
        assert!(normalize_username("has space").is_err());
        assert!(normalize_username(&"x".repeat(33)).is_err());
        assert!(normalize_username("ünï").is_err());
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let auth = crate::settings::Settings::defaults().auth;
        let h = hash_password(&auth, "correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&auth, "correct horse", Some(&h)));
        assert!(!verify_password(&auth, "wrong horse", Some(&h)));
        assert!(!verify_password(&auth, "correct horse", None));
    }
}
