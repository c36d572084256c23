//! Sign-up and sign-in, shared by the REST API and the socket's `signIn`/`signUp` frames.

use serde_json::json;

use crate::error::{Error, Result};
use crate::store::sessions::token_hash;
use crate::store::users::{self, with_argon2, NewUser, Profile, ProfileUpdate};
use crate::store::{keys, Store};

/// Who a request or a socket acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub username: String,
    pub uuid: String,
    /// Hash of the session token, when signed in with one.
    pub token_hash: Option<String>,
}

/// A signed-in result: the profile and the new session token.
pub struct SignedIn {
    pub profile: Profile,
    pub token: String,
}

impl SignedIn {
    /// The `User` this sign-in acts as.
    pub fn user(&self) -> User {
        User {
            username: self.profile.username.clone(),
            uuid: self.profile.uuid.clone(),
            token_hash: Some(token_hash(&self.token)),
        }
    }
}

/// Registers a user and starts a session.
pub async fn register(
    store: &Store,
    username: &str,
    password: &str,
    profile: ProfileUpdate,
) -> Result<SignedIn> {
    let username = users::normalize_username(username)?;
    users::check_password(password)?;
    profile.validate()?;
    if !store.username_available(&username).await? {
        return Err(Error::UsernameTaken);
    }
    let auth = store.settings.auth.clone();
    let password = password.to_string();
    let password_hash = with_argon2(&store.settings.auth, move || {
        users::hash_password(&auth, &password)
    })
    .await??;
    let profile = store
        .create_user(&NewUser {
            username,
            password_hash,
            profile,
        })
        .await?;
    let token = store.create_session(&profile.username).await?;
    Ok(SignedIn { profile, token })
}

/// Checks a password and starts a session. Each attempt is counted against the user and the
/// address before the password is checked; a right password gives its count back.
pub async fn login(store: &Store, username: &str, password: &str, addr: &str) -> Result<SignedIn> {
    // An invalid name cannot exist, but it still gets the same answer as a wrong password.
    let username = users::normalize_username(username).unwrap_or_else(|_| username.to_lowercase());
    store.reserve_login_attempt(&username, addr).await?;
    let hash = store.password_hash(&username).await?;
    let auth = store.settings.auth.clone();
    let pw = password.to_string();
    let verdict = with_argon2(&store.settings.auth, move || {
        users::verify_password(&auth, &pw, hash.as_deref())
    })
    .await;
    match verdict {
        Ok(true) => {
            store.release_login_attempt(&username, addr, true).await?;
            // Said only to whoever knows the password.
            if store.is_disabled(&username).await? {
                return Err(Error::AccountDisabled);
            }
        }
        Ok(false) => return Err(Error::InvalidCredentials),
        Err(e) => {
            // Not judged (the node was busy): the attempt does not count.
            store.release_login_attempt(&username, addr, false).await?;
            return Err(e);
        }
    }
    let profile = store
        .profile(&username)
        .await?
        .ok_or(Error::InvalidCredentials)?;
    let token = store.create_session(&username).await?;
    Ok(SignedIn { profile, token })
}

/// Seed 004's `signIn`: signs in, creating the user when missing.
pub async fn sign_in_or_create(
    store: &Store,
    username: &str,
    password: &str,
    addr: &str,
) -> Result<SignedIn> {
    let name = users::normalize_username(username)?;
    if store.password_hash(&name).await?.is_none() && store.username_available(&name).await? {
        match register(store, &name, password, ProfileUpdate::default()).await {
            Err(Error::UsernameTaken) => {}
            other => return other,
        }
    }
    login(store, &name, password, addr).await
}

/// The user behind a session token.
pub async fn authenticate(store: &Store, token: &str) -> Result<Option<User>> {
    let Some(username) = store.resolve_session(token).await? else {
        return Ok(None);
    };
    let uuid = match store.profile(&username).await? {
        Some(p) => p.uuid,
        None => return Ok(None),
    };
    Ok(Some(User {
        username,
        uuid,
        token_hash: Some(token_hash(token)),
    }))
}

/// Ends a session everywhere, closing the sockets that used it on every node.
pub async fn logout(store: &Store, user: &User, token: &str) -> Result<()> {
    store.revoke_session(token).await?;
    publish_revocation(store, &user.username, Some(&token_hash(token)), None).await
}

/// Ends a socket's session (its `signOut`) everywhere, by the token hash it signed in with.
pub async fn end_session(store: &Store, user: &User) -> Result<()> {
    let Some(hash) = user.token_hash.as_deref() else {
        return Ok(());
    };
    store.revoke_session_hash(&user.username, hash).await?;
    publish_revocation(store, &user.username, Some(hash), None).await
}

/// Changes a password and ends every other session of the user.
pub async fn change_password(store: &Store, user: &User, current: &str, new: &str) -> Result<()> {
    users::check_password(new)?;
    let hash = store.password_hash(&user.username).await?;
    let auth = store.settings.auth.clone();
    let (cur, new) = (current.to_string(), new.to_string());
    let phc = with_argon2(&store.settings.auth, move || {
        if users::verify_password(&auth, &cur, hash.as_deref()) {
            users::hash_password(&auth, &new).map(Some)
        } else {
            Ok(None)
        }
    })
    .await??;
    let Some(phc) = phc else {
        return Err(Error::InvalidCredentials);
    };
    store.set_password_hash(&user.username, &phc).await?;
    store
        .revoke_other_sessions(&user.username, user.token_hash.as_deref())
        .await?;
    publish_revocation(
        store,
        &user.username,
        None,
        Some(user.token_hash.as_deref().unwrap_or("")),
    )
    .await
}

async fn publish_revocation(
    store: &Store,
    username: &str,
    one: Option<&str>,
    all_except: Option<&str>,
) -> Result<()> {
    let mut payload = json!({"username": username, "kind": "revoked"});
    if let Some(h) = one {
        payload["token_hash"] = json!(h);
    }
    if let Some(h) = all_except {
        payload["all_except"] = json!(h);
    }
    store.publish(keys::USER_EVENTS, &payload.to_string()).await
}
