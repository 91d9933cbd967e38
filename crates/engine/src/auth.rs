//! Authentication: password logins, server-side sessions and API tokens.
//!
//! Session ids and tokens are 256 random bits from the operating system;
//! the database holds only their SHA-256, so a copy of it opens nothing.
//! A session ends after [`SessionPolicy::idle`] without a request, after
//! [`SessionPolicy::absolute`] whatever happens, when its user is disabled
//! and when their password changes (both also delete the rows).

use std::time::Duration;

use crate::port::{Actor, NewToken, TokenRecord, User};
use argon2::password_hash::rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::ids::TokenId;
use tenantatlas_domain::names::Password;
use tenantatlas_domain::names::TokenLifetime;

use crate::{Engine, EngineError, Result, password};

/// Prefix of API tokens (lets secret scanners recognise a leaked one).
pub const TOKEN_PREFIX: &str = "tat_";

/// Session lifetimes (OWASP ASVS 5.0 §7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Inactivity timeout.
    pub idle: Duration,
    /// Absolute timeout.
    pub absolute: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
        }
    }
}

/// 256 random bits, hex.
fn secret() -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    hex(&b)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The stored form of a session id or token.
pub fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

impl Engine {
    /// Checks an e-mail and password. Unknown accounts cost the same as
    /// known ones (a dummy hash is verified), and disabled accounts fail
    /// like a wrong password: the answer says nothing about which.
    pub async fn verify_login(&self, email: &str, password: &str) -> Result<Option<User>> {
        // e-mail addresses only: accepting ids too would give one account
        // several rate-limit keys
        let user = if email.contains('@') {
            self.store().find_user(email).await?
        } else {
            None
        };
        let hash = match &user {
            Some(u) => self.store().password_hash(u.id).await?,
            None => None,
        };
        let password = password.to_owned();
        let ok = self
            .hashing(move || password::verify_or_dummy(hash.as_deref(), &password))
            .await?;
        Ok(user.filter(|u| ok && u.disabled_at.is_none()))
    }

    /// Runs password hashing on one of the engine's hashing threads, at most
    /// [`EngineConfig::hashing_slots`](crate::EngineConfig::hashing_slots)
    /// at once: each Argon2id hash holds 19 MiB while it runs, so a burst of
    /// sign-ins would otherwise take memory without bound and starve the
    /// blocking pool. A caller that waits longer than
    /// [`EngineConfig::hashing_wait`](crate::EngineConfig::hashing_wait) for
    /// a slot gets [`EngineError::Busy`].
    pub(crate) async fn hashing<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let wait = self.config().hashing_wait;
        let permit = tokio::time::timeout(wait, self.hashing_slots().acquire())
            .await
            .map_err(|_| EngineError::Busy(Duration::from_secs(1)))?
            .map_err(|_| EngineError::Internal("password hashing is closed".into()))?;
        // on the engine's own hashing threads (see `hashpool`)
        let out = self
            .hash_pool()
            .run(work)
            .await
            .ok_or_else(|| EngineError::Internal("password hashing failed".into()))?;
        drop(permit);
        Ok(out)
    }

    /// Opens a session for `user`; returns the id for the cookie (a fresh
    /// one at every login).
    pub async fn open_session(&self, user: &User) -> Result<String> {
        let id = secret();
        self.store().create_session(&digest(&id), user.id, self.now()).await?;
        Ok(id)
    }

    /// The user behind a session id, when the session is still valid;
    /// records the request (inactivity timeout). An invalid session is
    /// deleted.
    pub async fn session_user(&self, id: &str, policy: SessionPolicy) -> Result<Option<User>> {
        self.check_session(id, policy, true).await
    }

    /// Whether a session is still valid, without counting this as activity
    /// (a live stream re-checking the session that opened it).
    pub async fn session_still_valid(&self, id: &str, policy: SessionPolicy) -> Result<bool> {
        Ok(self.check_session(id, policy, false).await?.is_some())
    }

    async fn check_session(&self, id: &str, policy: SessionPolicy, touch: bool) -> Result<Option<User>> {
        let hash = digest(id);
        let Some(s) = self.store().find_session(&hash).await? else {
            return Ok(None);
        };
        let now = self.now();
        let valid = s.user.disabled_at.is_none()
            && s.created_at >= s.user.password_changed_at
            && now < s.last_seen_at.plus(policy.idle)
            && now < s.created_at.plus(policy.absolute);
        if !valid {
            self.store().delete_session(&hash).await?;
            return Ok(None);
        }
        // one write a minute at most per session
        if touch && now >= s.last_seen_at.plus(Duration::from_secs(60)) {
            self.store().touch_session(&hash, now).await?;
        }
        Ok(Some(s.user))
    }

    /// Ends a session (logout).
    pub async fn end_session(&self, id: &str) -> Result<()> {
        Ok(self.store().delete_session(&digest(id)).await?)
    }

    /// Changes a password; every session of the user ends.
    pub async fn change_password(&self, user: &User, new: &Password, actor: Actor) -> Result<()> {
        let new = new.clone();
        let hash = self
            .hashing(move || password::hash(&new))
            .await?
            .map_err(|_| EngineError::Internal("password hashing failed".into()))?;
        Ok(self.store().set_password(user.id, &hash, actor, self.now()).await?)
    }

    /// Disables a user; every session of theirs ends.
    pub async fn disable_user(&self, user: &User, actor: Actor) -> Result<()> {
        Ok(self.store().disable_user(user.id, actor, self.now()).await?)
    }

    /// Creates an API token for `user`; the token is returned once and
    /// only its hash is kept. With `lifetime`, it stops working after it.
    pub async fn create_api_token(
        &self,
        user: &User,
        name: &str,
        lifetime: Option<TokenLifetime>,
        actor: Actor,
    ) -> Result<IssuedToken> {
        let name = tenantatlas_domain::names::printable_text("name", name, 100)?;
        let name = name.as_str();
        let token = format!("{TOKEN_PREFIX}{}", secret());
        let now = self.now();
        let new = NewToken {
            id: TokenId::from_uuid(uuid::Uuid::now_v7()),
            id_hash: digest(&token),
            user: user.id,
            name: name.to_owned(),
            expires_at: lifetime.map(|l| now.plus(l.duration())),
        };
        self.store().create_api_token(&new, actor, now).await?;
        Ok(IssuedToken {
            id: new.id,
            token,
            expires_at: new.expires_at,
        })
    }

    /// The user behind an API token: a disabled user's, an expired or a
    /// revoked token fails.
    pub async fn token_user(&self, token: &str) -> Result<Option<User>> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() != TOKEN_PREFIX.len() + 64 {
            return Ok(None);
        }
        let id_hash = digest(token);
        let Some(t) = self.store().find_api_token(&id_hash).await? else {
            return Ok(None);
        };
        let now = self.now();
        if t.user.disabled_at.is_some() || t.expires_at.is_some_and(|e| e <= now) {
            return Ok(None);
        }
        // its last use, to the minute: no write on most requests (on SQLite
        // a write takes the one writer)
        if t.last_used_at.is_none_or(|at| at <= now.minus(Duration::from_secs(60))) {
            self.store().touch_api_token(&id_hash, now).await?;
        }
        Ok(Some(t.user))
    }

    /// API tokens, newest first: `viewer`'s own; everyone's for a platform
    /// operator or the server command line (`None`).
    pub async fn api_tokens(&self, viewer: Option<&User>) -> Result<Vec<TokenRecord>> {
        let only = viewer.filter(|u| !u.platform_operator).map(|u| u.id);
        Ok(self.store().list_api_tokens(only).await?)
    }

    /// Revokes an API token at once: the next request with it is refused.
    /// A user revokes their own tokens, a platform operator anyone's, the
    /// server command line (`None`) any; another user's token is "not
    /// found" to whoever may not revoke it.
    pub async fn revoke_api_token(&self, who: Option<&User>, id: TokenId) -> Result<TokenRecord> {
        let t = self
            .store()
            .api_token(id)
            .await?
            .filter(|t| who.is_none_or(|u| u.platform_operator || u.id == t.user.id))
            .ok_or(EngineError::NotFound("token"))?;
        let actor = who.map_or(Actor::Cli, |u| Actor::User(u.id));
        if !self.store().revoke_api_token(id, actor, self.now()).await? {
            return Err(EngineError::NotFound("token"));
        }
        Ok(t)
    }

    /// Every user, by e-mail (server command line, system plane).
    pub async fn users(&self) -> Result<Vec<User>> {
        Ok(self.store().list_users().await?)
    }
}

/// A token just created: its secret is shown this once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    /// Its public id (to list and revoke it).
    pub id: TokenId,
    /// The secret, for the `Authorization: Bearer` header.
    pub token: String,
    /// When it stops working.
    pub expires_at: Option<Timestamp>,
}
