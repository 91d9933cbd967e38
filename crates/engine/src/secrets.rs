//! Secrets at rest: tenant client secrets are sealed by the engine before
//! the store sees them, and opened only when a provider needs them.
//!
//! The AEAD is XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`), with a
//! fresh random 24-byte nonce per secret — long enough that random nonces
//! never repeat in practice, so no counter has to be kept anywhere. A
//! sealed secret is
//!
//! ```text
//! 0x01 | key id (8 bytes) | nonce (24 bytes) | ciphertext and tag
//! ```
//!
//! The leading version byte and the key id say which format and which key
//! sealed it, so that a key can be rotated later (open with the old key,
//! seal with the new) and a secret sealed with another key is named as
//! such instead of failing as "altered". The associated data binds the
//! ciphertext to its tenant (and to its header): a sealed secret copied
//! into another tenant's row does not open.
//!
//! The key is [`SECRET_KEY_ENV`] (32 bytes, base64) or, on SQLite when that
//! is unset, a key file `<database file>.key` beside the database, created
//! on first use with mode 0600 and refused when group or others can read
//! it. PostgreSQL has no such fallback: every node must hold the same key,
//! so it must be given.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use tenantatlas_domain::ids::TenantId;
use zeroize::Zeroizing;

/// The environment variable holding the key that seals tenant secrets.
pub const SECRET_KEY_ENV: &str = "TENANTATLAS_SECRET_KEY";

/// The format version a sealed secret starts with.
const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + KEY_ID_LEN;
/// Poly1305's tag.
const TAG_LEN: usize = 16;

/// What can go wrong with the key or a sealed secret. Messages name the
/// variable or file concerned and never hold a key or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The configured key is not a key (the message names where it came
    /// from).
    #[error("{0}")]
    BadKey(String),
    /// No key where one is needed.
    #[error(
        "no key to seal tenant secrets: set {SECRET_KEY_ENV} to 32 random bytes in base64 \
         (`openssl rand -base64 32`; with PostgreSQL every node needs the same key)"
    )]
    NoKey,
    /// The key file is unsafe to use (readable by others).
    #[error("{0}")]
    UnsafeKeyFile(String),
    /// The key file could not be read or written.
    #[error("{0}")]
    KeyFile(String),
    /// A stored secret does not open with this key for this tenant.
    #[error("{0}")]
    Unopenable(String),
}

impl SecretError {
    /// Whether the operator has to change the configuration (a bad or
    /// missing key, an unsafe key file), as opposed to a failure.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            SecretError::BadKey(_) | SecretError::NoKey | SecretError::UnsafeKeyFile(_)
        )
    }
}

/// A 32-byte key that seals tenant secrets. `Debug` shows its id only; its
/// bytes are wiped when the last copy is dropped.
#[derive(Clone)]
pub struct SecretKey(Arc<Zeroizing<[u8; 32]>>);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(id {})", self.id_hex())
    }
}

/// Base64 as people paste it: standard or URL-safe alphabet, padded or not.
fn decode_base64(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    use base64::engine::DecodePaddingMode;
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    let lenient = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    [
        GeneralPurpose::new(&base64::alphabet::STANDARD, lenient),
        GeneralPurpose::new(&base64::alphabet::URL_SAFE, lenient),
    ]
    .iter()
    .find_map(|e| e.decode(text.trim()).ok())
    .map(Zeroizing::new)
}

impl SecretKey {
    /// Parses 32 bytes in base64; `source` names where the text came from
    /// (the variable, the key file) in the error, which never quotes it.
    pub fn parse_base64(source: &str, text: &str) -> Result<Self, SecretError> {
        let rule = "must be 32 random bytes in base64 (44 characters; make one with `openssl rand -base64 32`)";
        let bytes =
            decode_base64(text).ok_or_else(|| SecretError::BadKey(format!("{source} {rule}: it is not base64")))?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| SecretError::BadKey(format!("{source} {rule}: it decodes to {} bytes", bytes.len())))?;
        Ok(Self(Arc::new(Zeroizing::new(key))))
    }

    /// The key in [`SECRET_KEY_ENV`]: `None` when unset, an error naming the
    /// variable when it is set but is not a key.
    pub fn from_env() -> Result<Option<Self>, SecretError> {
        match std::env::var(SECRET_KEY_ENV) {
            Ok(v) => Self::parse_base64(SECRET_KEY_ENV, &v).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(SecretError::BadKey(format!(
                "{SECRET_KEY_ENV} must be 32 random bytes in base64: it is not text"
            ))),
        }
    }

    /// A fresh random key.
    pub fn generate() -> Result<Self, SecretError> {
        use argon2::password_hash::rand_core::{OsRng, RngCore as _};
        // filled in place, so that no copy of the key is left behind
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng
            .try_fill_bytes(bytes.as_mut_slice())
            .map_err(|e| SecretError::KeyFile(format!("the system's random generator failed: {e}")))?;
        Ok(Self(Arc::new(bytes)))
    }

    /// The key in base64 (the form of the variable and the key file).
    fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.0.as_slice()))
    }

    /// A public fingerprint of the key: the first 8 bytes of a SHA-256 of
    /// it, recorded in every secret it seals.
    fn id(&self) -> [u8; KEY_ID_LEN] {
        let mut h = Sha256::new();
        h.update(b"tenantatlas secret key id v1\0");
        h.update(self.0.as_slice());
        let d = h.finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&d[..KEY_ID_LEN]);
        id
    }

    fn id_hex(&self) -> String {
        hex(&self.id())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Seals and opens tenant secrets with one key.
#[derive(Clone, Debug)]
pub struct Sealer {
    key: SecretKey,
}

/// What a sealed secret is bound to: its header and its tenant.
fn associated_data(header: &[u8], tenant: TenantId) -> Vec<u8> {
    let mut aad = b"tenantatlas tenant secret\0".to_vec();
    aad.extend_from_slice(header);
    aad.extend_from_slice(tenant.as_uuid().as_bytes());
    aad
}

impl Sealer {
    /// A sealer with `key`.
    pub fn new(key: SecretKey) -> Self {
        Self { key }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        // borrowed as the cipher's key type, not copied: the only copy
        // outside the `Zeroizing` is the cipher's own, wiped on its drop
        let key: &[u8; 32] = &self.key.0;
        XChaCha20Poly1305::new(key.into())
    }

    /// Seals `plain` for `tenant`.
    pub fn seal(&self, tenant: TenantId, plain: &[u8]) -> Result<Vec<u8>, SecretError> {
        let nonce = XNonce::try_generate()
            .map_err(|e| SecretError::KeyFile(format!("the system's random generator failed: {e}")))?;
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.key.id());
        let aad = associated_data(&out, tenant);
        let sealed = self
            .cipher()
            .encrypt(&nonce, Payload { msg: plain, aad: &aad })
            .map_err(|_| SecretError::Unopenable("the secret could not be sealed".into()))?;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`Sealer::seal`] sealed for `tenant`.
    pub fn open(&self, tenant: TenantId, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let damaged = || {
            SecretError::Unopenable(format!(
                "the stored secret of tenant {tenant} does not open: it was sealed for another tenant or altered; \
                 set it again with `tenantatlas tenant credentials set`"
            ))
        };
        if sealed.len() < HEADER_LEN + NONCE_LEN + TAG_LEN {
            return Err(damaged());
        }
        let (header, rest) = sealed.split_at(HEADER_LEN);
        if header[0] != VERSION {
            return Err(SecretError::Unopenable(format!(
                "the stored secret of tenant {tenant} is in format {} which this build does not read",
                header[0]
            )));
        }
        if header[1..] != self.key.id() {
            return Err(SecretError::Unopenable(format!(
                "the stored secret of tenant {tenant} was sealed with another key (key id {}, this key is {}): \
                 {SECRET_KEY_ENV} or the key file changed; restore that key or set the secret again with \
                 `tenantatlas tenant credentials set`",
                hex(&header[1..]),
                self.key.id_hex()
            )));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| damaged())?;
        let aad = associated_data(header, tenant);
        self.cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| damaged())
    }
}

/// The key file of an SQLite database: `<database file>.key` beside it.
pub fn key_file_of(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// The key in the key file at `path`, created (mode 0600) when missing.
/// A key file that group or others may read is refused: whoever could
/// read it could open every secret in the database.
pub fn load_or_create_key_file(path: &Path) -> Result<SecretKey, SecretError> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(_) => read_key_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretKey::generate()?;
            match write_key_file(path, &key) {
                Ok(()) => Ok(key),
                // another process created it first: use theirs
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(path),
                Err(e) => Err(SecretError::KeyFile(format!(
                    "cannot create the key file {shown}: {e} (or set {SECRET_KEY_ENV})"
                ))),
            }
        }
        Err(e) => Err(SecretError::KeyFile(format!("cannot read the key file {shown}: {e}"))),
    }
}

fn read_key_file(path: &Path) -> Result<SecretKey, SecretError> {
    let shown = path.display();
    let meta =
        std::fs::metadata(path).map_err(|e| SecretError::KeyFile(format!("cannot read the key file {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(SecretError::KeyFile(format!(
            "the key file {shown} is not a regular file"
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretError::UnsafeKeyFile(format!(
                "the key file {shown} can be read by group or others (mode {mode:04o}): \
                 run `chmod 600 {shown}` (and treat the secrets it seals as exposed if others did read it)"
            )));
        }
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| SecretError::KeyFile(format!("cannot read the key file {shown}: {e}")))?,
    );
    SecretKey::parse_base64(&format!("the key file {shown}"), &text)
}

/// Writes the key to a temporary file (mode 0600) beside `path` and links
/// it into place, so that no process ever reads a half-written key file and
/// an existing one is never replaced.
fn write_key_file(path: &Path, key: &SecretKey) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // tempfile creates it with mode 0600 on Unix
    let mut tmp = tempfile::Builder::new().prefix(".tenantatlas-key-").tempfile_in(&dir)?;
    let text = key.to_base64();
    tmp.write_all(text.as_bytes())?;
    tmp.write_all(b"\n")?;
    tmp.as_file().sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    // the link itself must survive a crash: losing the key loses every secret
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(n: u128) -> TenantId {
        TenantId::from_uuid(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn seals_open_only_for_their_tenant_and_key() {
        let s = Sealer::new(SecretKey::generate().unwrap());
        let a = s.seal(tenant(1), b"s3cret value").unwrap();
        let b = s.seal(tenant(1), b"s3cret value").unwrap();
        assert_ne!(a, b, "a fresh nonce every time");
        assert_eq!(a[0], VERSION);
        assert!(!a.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(s.open(tenant(1), &a).unwrap().as_slice(), b"s3cret value");
        let other = s.open(tenant(2), &a).unwrap_err();
        assert!(other.to_string().contains("another tenant"), "{other}");
        let mut altered = a.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(s.open(tenant(1), &altered).is_err());
        let mut relabelled = a.clone();
        relabelled[0] = 2;
        assert!(
            s.open(tenant(1), &relabelled)
                .unwrap_err()
                .to_string()
                .contains("format 2")
        );
        assert!(s.open(tenant(1), &a[..10]).is_err());
        let rotated = Sealer::new(SecretKey::generate().unwrap());
        let e = rotated.open(tenant(1), &a).unwrap_err();
        assert!(e.to_string().contains("another key"), "{e}");
    }

    #[test]
    fn keys_are_32_bytes_of_base64_and_never_shown() {
        let k = SecretKey::generate().unwrap();
        let text = k.to_base64();
        assert_eq!(text.len(), 44);
        let again = SecretKey::parse_base64("X", &format!(" {}\n", text.as_str())).unwrap();
        assert_eq!(again.id(), k.id());
        // URL-safe and unpadded forms are the same key
        let url = text.replace('+', "-").replace('/', "_");
        assert_eq!(
            SecretKey::parse_base64("X", url.trim_end_matches('=')).unwrap().id(),
            k.id()
        );
        assert!(!format!("{k:?}").contains(text.as_str()));
        let short = SecretKey::parse_base64(SECRET_KEY_ENV, "c2hvcnQ=").unwrap_err();
        assert!(short.to_string().starts_with(SECRET_KEY_ENV), "{short}");
        assert!(short.to_string().contains("decodes to 5 bytes"), "{short}");
        let junk = SecretKey::parse_base64(SECRET_KEY_ENV, "not base64 at all!").unwrap_err();
        assert!(junk.to_string().contains("not base64") && !junk.to_string().contains("at all"));
        assert!(junk.is_configuration());
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_created_private_and_refused_when_others_can_read_it() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = key_file_of(&dir.path().join("t.db"));
        assert!(path.ends_with("t.db.key"));
        let k = load_or_create_key_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            load_or_create_key_file(&path).unwrap().id(),
            k.id(),
            "the same key next time"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create_key_file(&path).unwrap_err();
        assert!(matches!(e, SecretError::UnsafeKeyFile(_)), "{e:?}");
        assert!(
            e.to_string().contains("chmod 600") && e.to_string().contains("t.db.key"),
            "{e}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "garbage").unwrap();
        let e = load_or_create_key_file(&path).unwrap_err();
        assert!(
            e.to_string().contains("the key file") && e.to_string().contains("not base64"),
            "{e}"
        );
        // nothing else is left in the folder (the temporary file was linked, then removed)
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
