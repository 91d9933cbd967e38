//! Password hashing: Argon2id with OWASP's recommended parameters, stored
//! as PHC strings. Verification of an unknown account still runs a full
//! hash ([`verify_or_dummy`]) so timing does not reveal which accounts
//! exist.

use std::cell::RefCell;
use std::sync::LazyLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tenantatlas_domain::names::Password;

fn params() -> Params {
    // OWASP: m = 19 MiB, t = 2, p = 1.
    #[expect(clippy::expect_used, reason = "constant parameters within argon2's limits")]
    Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters")
}

thread_local! {
    /// The 19 MiB an Argon2id hash works in, kept by the thread for the
    /// next hash. Allocating it per hash made glibc's heap grow by 19 MiB at
    /// nearly every sign-in (the 64-byte-aligned block does not come back
    /// to the same place), without bound.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Argon2id of `password` with `salt` and `params` into `out`, in this
/// thread's reused memory.
fn argon2id(params: Params, password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<(), argon2::Error> {
    BLOCKS.with(|b| {
        let mut blocks = b.borrow_mut();
        if blocks.len() < params.block_count() {
            blocks.resize(params.block_count(), Block::default());
        }
        let n = params.block_count();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password_into_with_memory(
            password,
            salt,
            out,
            &mut blocks[..n],
        )
    })
}

/// Hashes a password into a PHC string.
pub fn hash(password: &Password) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    let mut raw = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut raw)?;
    let params = params();
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        Ok(argon2id(params.clone(), password.expose().as_bytes(), salt_bytes, out)?)
    })?;
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    }
    .to_string())
}

/// Whether `password` matches the PHC string `phc` (Argon2id; the
/// comparison is constant-time).
pub fn verify(phc: &str, password: &str) -> bool {
    let check = || -> Result<bool, argon2::password_hash::Error> {
        let parsed = PasswordHash::new(phc)?;
        if Algorithm::try_from(parsed.algorithm)? != Algorithm::Argon2id {
            return Ok(false);
        }
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Ok(false);
        };
        let params = Params::try_from(&parsed)?;
        let mut raw = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut raw)?;
        let got = Output::init_with(expected.len(), |out| {
            Ok(argon2id(params.clone(), password.as_bytes(), salt_bytes, out)?)
        })?;
        Ok(got == expected)
    };
    check().unwrap_or(false)
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
    /// The tests below measure or spend memory: one at a time.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// Many hashes on one thread hold one buffer: resident memory does
    /// not grow with each (it grew by 19 MiB per hash before).
    #[test]
    fn repeated_hashing_reuses_its_memory() {
        let _one = SERIAL.lock();
        let rss = || {
            std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .and_then(|l| l.split_whitespace().nth(1))
                        .and_then(|k| k.parse::<u64>().ok())
                })
                .unwrap_or(0)
        };
        std::thread::spawn(move || {
            let h = hash(&Password::parse("p", "a password to hash").unwrap()).unwrap();
            let _ = verify(&h, "warm up");
            let before = rss();
            for _ in 0..12 {
                assert!(!verify(&h, "not it at all"));
            }
            let grown = rss().saturating_sub(before);
            // one hash's 19 MiB more would be a leak; twelve, the old one
            assert!(grown < 16 * 1024, "resident memory grew by {grown} KiB over 12 hashes");
        })
        .join()
        .unwrap();
    }

    use super::*;

    #[test]
    fn hashes_are_argon2id_phc_and_verify() {
        let _one = SERIAL.lock();
        let p = Password::parse("password", "correct horse battery").unwrap();
        let h = hash(&p).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(!h.contains("horse"));
        assert!(verify(&h, "correct horse battery"));
        assert!(!verify(&h, "correct horse batterx"));
        assert!(!verify("not a phc string", "x"));
        assert_ne!(h, hash(&p).unwrap(), "salted");
        // the PHC string is argon2's own: its verifier agrees
        use argon2::password_hash::PasswordVerifier as _;
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        assert!(Argon2::default().verify_password(b"wrong", &parsed).is_err());
        // ... and a hash argon2 made verifies here (the stored hashes of
        // earlier versions)
        use argon2::password_hash::PasswordHasher as _;
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
            .hash_password(b"an older hash", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify(&theirs, "an older hash"));
        assert!(!verify(&theirs, "an older hasH"));
        assert!(!verify_or_dummy(None, "correct horse battery"));
        assert!(verify_or_dummy(Some(&h), "correct horse battery"));
    }
}
