//! Password hashing: Argon2id with OWASP's recommended parameters, stored
//! as PHC strings. Verification of an unknown account still runs a full
//! hash ([`verify_or_dummy`]) so timing does not reveal which accounts
//! exist.

use std::sync::LazyLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tenantatlas_domain::names::Password;

fn hasher() -> Argon2<'static> {
    // OWASP: m = 19 MiB, t = 2, p = 1.
    #[expect(clippy::expect_used, reason = "constant parameters within argon2's limits")]
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string.
pub fn hash(password: &Password) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(hasher().hash_password(password.expose().as_bytes(), &salt)?.to_string())
}

/// Whether `password` matches the PHC string `phc`.
pub fn verify(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

static DUMMY: LazyLock<String> = LazyLock::new(|| {
    #[expect(clippy::expect_used, reason = "the dummy password satisfies the length rules")]
    let p = Password::parse("password", "dummy password for timing").expect("valid dummy");
    hash(&p).unwrap_or_default()
});

/// Verifies against `phc` when the account exists, otherwise against a
/// dummy hash (same cost) and returns `false`.
pub fn verify_or_dummy(phc: Option<&str>, password: &str) -> bool {
    match phc {
        Some(h) => verify(h, password),
        None => {
            let _ = verify(&DUMMY, password);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_phc_and_verify() {
        let p = Password::parse("password", "correct horse battery").unwrap();
        let h = hash(&p).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(!h.contains("horse"));
        assert!(verify(&h, "correct horse battery"));
        assert!(!verify(&h, "correct horse batterx"));
        assert!(!verify("not a phc string", "x"));
        assert_ne!(h, hash(&p).unwrap(), "salted");
        assert!(!verify_or_dummy(None, "correct horse battery"));
        assert!(verify_or_dummy(Some(&h), "correct horse battery"));
    }
}
