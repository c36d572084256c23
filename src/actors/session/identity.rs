//! Who a socket is: `signIn` / `signUp` (seed 004), `auth` (chatnode), `signOut` (both).

use super::reply::Reply;
use super::Caller;
use crate::accounts::{self, User};
use crate::error::{Error, Result};
use crate::protocol::outbound::{Authorized, SignedOut};
use crate::protocol::seed004::{SignedIn, Sys};
use crate::protocol::{Credentials, Outbound};

/// `signIn`: sign in, creating the user when missing.
pub(super) async fn sign_in(cx: &Caller, c: Credentials) -> Result<Reply> {
    let store = &cx.app.store;
    let s = accounts::sign_in_or_create(store, &c.username, &c.password, &cx.peer_addr).await?;
    Ok(signed_in(s))
}

/// `signUp`: register, then sign in.
pub(super) async fn sign_up(cx: &Caller, c: Credentials) -> Result<Reply> {
    let store = &cx.app.store;
    let s = accounts::register(store, &c.username, &c.password, Default::default()).await?;
    Ok(signed_in(s))
}

/// `auth`: sign this socket in with a session token.
pub(super) async fn auth(cx: &Caller, token: &str) -> Result<Reply> {
    let user = accounts::authenticate(&cx.app.store, token)
        .await?
        .ok_or(Error::Unauthorized)?;
    Ok(Reply {
        frames: vec![authorized(&user, None)],
        sign_in: Some(user),
        ..Default::default()
    })
}

/// `signOut`: the session ends everywhere; the socket stays open, signed out.
pub(super) fn sign_out(cx: &Caller) -> Result<Reply> {
    let u = cx.me()?;
    Ok(Reply {
        frames: vec![Outbound::SignOut(SignedOut {
            uuid: u.uuid.clone(),
        })],
        sign_out: true,
        ..Default::default()
    })
}

/// `authorized`; `access_key` only for a session this frame started.
pub(super) fn authorized(user: &User, access_key: Option<String>) -> Outbound {
    Outbound::Authorized(Authorized {
        access_key,
        user_uuid: user.uuid.clone(),
        username: user.username.clone(),
    })
}

/// A seed 004 sign-in's answers: `authorized` with the new token, and `sys` signIn (to this
/// socket only: seed 004's client learns from it who it is).
fn signed_in(s: accounts::SignedIn) -> Reply {
    let user = s.user();
    let sys = Sys::SignIn(SignedIn {
        username: user.username.clone(),
        uuid: user.uuid.clone(),
    });
    Reply {
        frames: vec![authorized(&user, Some(s.token)), Outbound::Sys(sys)],
        sign_in: Some(user),
        ..Default::default()
    }
}
