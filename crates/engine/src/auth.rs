//! Authentication: password logins, server-side sessions and API tokens.
//!
//! Session ids and tokens are 256 random bits from the operating system;
//! the database holds only their SHA-256, so a copy of it opens nothing.
//! A session ends after [`SessionPolicy::idle`] without a request, after
//! [`SessionPolicy::absolute`] whatever happens, when its user is disabled
//! and when their password changes (both also delete the rows).

use std::time::Duration;

use crate::port::{Actor, User};
use argon2::password_hash::rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use tenantatlas_domain::names::Password;

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

    /// Runs password hashing on a blocking thread, at most
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
        let out = tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| EngineError::Internal("password hashing failed".into()))?;
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
    /// only its hash is kept.
    pub async fn create_api_token(&self, user: &User, name: &str, actor: Actor) -> Result<String> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(EngineError::Invalid(tenantatlas_domain::FieldError::new(
                "name",
                "must be 1 to 100 characters",
            )));
        }
        let token = format!("{TOKEN_PREFIX}{}", secret());
        self.store()
            .create_api_token(&digest(&token), user.id, name, actor, self.now())
            .await?;
        Ok(token)
    }

    /// The user behind an API token (a disabled user's tokens fail).
    pub async fn token_user(&self, token: &str) -> Result<Option<User>> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() != TOKEN_PREFIX.len() + 64 {
            return Ok(None);
        }
        Ok(self
            .store()
            .find_api_token(&digest(token))
            .await?
            .map(|t| t.user)
            .filter(|u| u.disabled_at.is_none()))
    }
}
