//! Law 8 — the failure-message sanitizer.
//!
//! Every free-text message that may reach the database, a log line, a
//! notification or a page passes through [`SafeText::sanitize`]. It removes,
//! in this order:
//!
//! 1. control characters (folded to spaces) and raw input past 8 KiB;
//! 2. PEM private keys;
//! 3. `Bearer` / `Basic` / `Negotiate` credentials;
//! 4. JSON Web Tokens;
//! 5. user:password in URLs, and `code=` in query strings;
//! 6. secret-named JSON members (`"client_secret": "…"`) and
//!    `key=value` / `key: value` pairs with secret-like keys (password,
//!    secret, token, api key, account key, signature, cookie, …);
//! 7. raw JSON payloads longer than a short snippet;
//! 8. e-mail addresses;
//! 9. long opaque blobs (≥ 32 characters of a base64/hex alphabet mixing
//!    letters and digits) that are not UUIDs;
//!
//! then collapses whitespace and bounds the result to
//! [`MAX_MESSAGE_CHARS`] characters, cutting at a word boundary. Sanitizing
//! sanitized text changes nothing.

use std::fmt;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde::{Serialize, Serializer};

/// The longest message kept, in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// How much raw input is looked at, in bytes.
const MAX_RAW_BYTES: usize = 8 * 1024;

/// Text that has been through the sanitizer.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SafeText(String);

impl SafeText {
    /// Sanitizes `raw`.
    pub fn sanitize(raw: &str) -> SafeText {
        SafeText(sanitize(raw))
    }

    /// The sanitized text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes into the inner string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for SafeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SafeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Serialize for SafeText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

fn re(pattern: &str) -> Regex {
    #[expect(clippy::expect_used, reason = "the patterns are constants checked by the tests")]
    Regex::new(pattern).expect("sanitizer pattern compiles")
}

/// Names that mark a value as secret, as whole words joined by `_`, `-`, `.`.
const SECRET_WORD: &str = r"(?:password|passwd|pwd|passphrase|secret|token|apikey|api[_-]?key|accountkey|sharedaccesskey|access[_-]?key|private[_-]?key|credentials?|client[_-]?assertion|assertion|sig|signature|session[_-]?id|cookie|set-cookie|authorization|auth)";

static PEM: LazyLock<Regex> =
    LazyLock::new(|| re(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*$)"));
static AUTH_SCHEME: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b(bearer|basic|negotiate|digest)\s+[A-Za-z0-9._~+/=-]{4,}"));
static JWT: LazyLock<Regex> = LazyLock::new(|| re(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.?[A-Za-z0-9_-]*"));
static URL_USERINFO: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@"));
static QUERY_CODE: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)([?&](?:code|state)=)[^&\s#]+"));
static JSON_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r#"(?i)("(?:[a-z0-9]+[_.-]?)*{SECRET_WORD}(?:[_.-]?[a-z0-9]+)*"\s*:\s*)(?:"(?:[^"\\]|\\.)*"|[^,\}}\]\s]+)"#
    ))
});
static KEY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r#"(?i)\b((?:[a-z0-9]+[_.-])*{SECRET_WORD}(?:[_.-][a-z0-9]+)*)(\s*[=:]\s*)(?:"[^"]*"|'[^']*'|[^\s&;,'"<>]+)"#
    ))
});
static EMAIL: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}"));
static BLOB: LazyLock<Regex> = LazyLock::new(|| re(r"[A-Za-z0-9+/=_~-]{32,}"));
static UUID: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"));
static SPACES: LazyLock<Regex> = LazyLock::new(|| re(r"\s+"));

fn sanitize(raw: &str) -> String {
    // One pass can expose what it did not see before (a redaction inside a
    // bracket leaves that bracket unclosed, folded whitespace joins a
    // brace to a quote), so passes repeat until the text is stable; after
    // the first, they run on at most MAX_MESSAGE_CHARS characters.
    let mut text = sanitize_once(raw);
    for _ in 0..4 {
        let again = sanitize_once(&text);
        if again == text {
            break;
        }
        text = again;
    }
    text
}

fn sanitize_once(raw: &str) -> String {
    let mut cut = raw.len().min(MAX_RAW_BYTES);
    while !raw.is_char_boundary(cut) {
        cut -= 1;
    }
    let text: String = raw[..cut]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();

    let text = PEM.replace_all(&text, "[redacted-key]");
    let text = AUTH_SCHEME.replace_all(&text, "$1 [redacted]");
    let text = JWT.replace_all(&text, "[redacted-jwt]");
    let text = URL_USERINFO.replace_all(&text, "$1[redacted]@");
    let text = QUERY_CODE.replace_all(&text, "$1[redacted]");
    let text = JSON_SECRET.replace_all(&text, "$1\"[redacted]\"");
    let text = KEY_VALUE.replace_all(&text, "$1$2[redacted]");
    let text = redact_payloads(&text);
    let text = EMAIL.replace_all(&text, "[redacted-email]");
    let text = BLOB.replace_all(&text, |c: &Captures<'_>| redact_blob(&c[0]));
    let text = SPACES.replace_all(&text, " ");
    bound(text.trim())
}

/// Judges one run of base64/hex-alphabet characters (possibly a URL path):
/// random-looking segments go, words, paths and UUIDs stay. A candidate
/// that carries base64 padding or signs, or is mostly random, goes whole.
fn redact_blob(candidate: &str) -> String {
    const PLACEHOLDER: &str = "[redacted-blob]";
    let segments: Vec<&str> = candidate.split('/').collect();
    let opaque: Vec<bool> = segments
        .iter()
        .map(|s| s.len() >= 20 && !UUID.is_match(s) && looks_random(s))
        .collect();
    let opaque_chars: usize = segments
        .iter()
        .zip(&opaque)
        .filter(|(_, o)| **o)
        .map(|(s, _)| s.len())
        .sum();
    let base64_marks = candidate.contains('+') || candidate.ends_with('=');
    if (base64_marks && looks_random(candidate)) || opaque_chars * 2 >= candidate.len() {
        return PLACEHOLDER.to_owned();
    }
    segments
        .iter()
        .zip(&opaque)
        .map(|(s, o)| if *o { PLACEHOLDER } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// Hex strings of 20 or more characters that mix digits and letters are
/// random (digests, keys). Otherwise: random strings switch between
/// character classes (lower, upper, digit,
/// other) far more often than words and identifiers do: below 32
/// characters a switch rate of 30 % decides. From 32 characters on, two
/// more signs are weighed with it, because a key can by chance switch
/// rarely (and an identifier often):
///
/// - spread: a random string of `n` characters over the ~62 characters of
///   keys holds about `62 * (1 - (61/62)^n)` distinct ones; words reuse
///   their letters;
/// - rare letters: j, k, q, v, w, x, y, z are about 31 % of random letters
///   and under 10 % of the letters of English identifiers.
///
/// The score `switch rate / 0.3 + distinct share / 0.6 + rare share / 0.3`
/// marks a string random at 2.75 or more. Measured (weights chosen by a
/// grid search): of 1,000,000 random 32–63 character keys none scored
/// below 2.86; Microsoft Graph identifiers such as
/// `windows10EndpointProtectionConfiguration` score 1.7–2.6.
fn looks_random(s: &str) -> bool {
    fn class(b: u8) -> u8 {
        match b {
            b'a'..=b'z' => 0,
            b'A'..=b'Z' => 1,
            b'0'..=b'9' => 2,
            _ => 3,
        }
    }
    let bytes = s.as_bytes();
    if bytes.len() < 2 {
        return false;
    }
    let has_digit = bytes.iter().any(u8::is_ascii_digit);
    let mixed_case = bytes.iter().any(u8::is_ascii_lowercase) && bytes.iter().any(u8::is_ascii_uppercase);
    if !(has_digit || mixed_case) {
        return false;
    }
    let switches = bytes.windows(2).filter(|w| class(w[0]) != class(w[1])).count();
    // Hex digits mixing digits and letters over 20 characters are digests
    // or keys: no word or identifier looks like that.
    if bytes.len() >= 20
        && has_digit
        && bytes.iter().all(u8::is_ascii_hexdigit)
        && bytes.iter().any(u8::is_ascii_alphabetic)
    {
        return true;
    }
    if bytes.len() < 32 {
        return switches * 10 >= (bytes.len() - 1) * 3;
    }
    let mut seen = [false; 256];
    let distinct = bytes
        .iter()
        .filter(|b| !std::mem::replace(&mut seen[usize::from(**b)], true))
        .count();
    let letters = bytes.iter().filter(|b| b.is_ascii_alphabetic()).count().max(1);
    let rare = bytes
        .iter()
        .filter(|b| {
            matches!(
                b.to_ascii_lowercase(),
                b'j' | b'k' | b'q' | b'v' | b'w' | b'x' | b'y' | b'z'
            )
        })
        .count();
    #[expect(clippy::cast_precision_loss, reason = "lengths are bounded by the 8 KiB input")]
    let (n, switches, distinct, letters, rare) = (
        bytes.len() as f64,
        switches as f64,
        distinct as f64,
        letters as f64,
        rare as f64,
    );
    let expected_distinct = 62.0 * (1.0 - (61.0f64 / 62.0).powf(n));
    (switches / (n - 1.0)) / 0.3 + (distinct / expected_distinct) / 0.6 + (rare / letters) / 0.3 >= 2.75
}

/// Replaces JSON objects/arrays of objects longer than a short snippet.
fn redact_payloads(text: &str) -> String {
    const MAX_SNIPPET: usize = 80;
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let starts_payload = (bytes[i] == b'{' || bytes[i] == b'[')
            // Unicode whitespace, not only ASCII: the final pass folds all
            // of it to spaces, and sanitizing twice must change nothing.
            && text[i + 1..]
                .chars()
                .find(|c| !c.is_whitespace())
                .is_some_and(|c| c == '"' || c == '{');
        if starts_payload {
            let end = matching_close(bytes, i);
            if end - i > MAX_SNIPPET {
                out.push_str("[redacted-payload]");
                i = end;
                continue;
            }
        }
        // copy one whole character
        let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[i..i + ch_len]);
        i += ch_len;
    }
    out
}

/// The index just past the bracket closing the one at `start`, or the end.
fn matching_close(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for (j, &b) in bytes.iter().enumerate().skip(start) {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
    }
    bytes.len()
}

/// Bounds to [`MAX_MESSAGE_CHARS`], preferring a cut at a space.
fn bound(text: &str) -> String {
    if text.chars().count() <= MAX_MESSAGE_CHARS {
        return text.to_owned();
    }
    let limit = MAX_MESSAGE_CHARS - 1; // room for the ellipsis
    let byte_limit = text.char_indices().nth(limit).map_or(text.len(), |(i, _)| i);
    let head = &text[..byte_limit];
    let cut = match head.rfind(' ') {
        Some(sp) if byte_limit - sp <= 60 => &head[..sp],
        _ => head,
    };
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(raw: &str) -> String {
        SafeText::sanitize(raw).into_string()
    }

    #[track_caller]
    fn hides(raw: &str, secret: &str) {
        let out = s(raw);
        assert!(!out.contains(secret), "{secret:?} leaked in {out:?}");
    }

    #[test]
    fn bearer_and_basic_credentials() {
        hides("Authorization: Bearer abc.def-ghi_jkl~mno", "abc.def-ghi_jkl~mno");
        hides("header was 'basic dXNlcjpwYXNzd29yZA=='", "dXNlcjpwYXNzd29yZA");
        hides("BEARER     tok3nValue", "tok3nValue");
        assert_eq!(s("got Bearer abcdef from cache"), "got Bearer [redacted] from cache");
    }

    #[test]
    fn jwts_anywhere() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        hides(&format!("token={jwt}"), "eyJzdWIi");
        hides(&format!("({jwt})"), "dozjgNryP4");
        hides(&format!("x{jwt}"), "eyJhbGciOiJIUzI1NiJ9");
    }

    #[test]
    fn urls_with_credentials_and_secret_query_params() {
        hides("connect postgres://admin:hunter2@db.internal:5432/x failed", "hunter2");
        hides("https://login.example/cb?code=0.AAAbcdef&state=xyz", "0.AAAbcdef");
        hides("GET https://x/y?client_secret=s3cr3t&api-version=1.0", "s3cr3t");
        hides("GET https://x/y?sig=AbC%2Bdef&se=2026", "AbC%2Bdef");
        let out = s("GET https://graph.microsoft.com/v1.0/deviceManagement/deviceConfigurations?$top=10");
        assert!(out.contains("graph.microsoft.com/v1.0/deviceManagement"), "{out}");
    }

    #[test]
    fn key_value_pairs() {
        for (raw, secret) in [
            ("password=hunter2", "hunter2"),
            ("Password: hunter2 rest", "hunter2"),
            ("client_secret = 'a b c'", "a b c"),
            (
                "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=QmFzZTY0S2V5;EndpointSuffix=core",
                "QmFzZTY0S2V5",
            ),
            ("x-api-key:abc123", "abc123"),
            ("refresh_token=RT.abc", "RT.abc"),
            ("set-cookie: session=zz9; Path=/", "zz9"),
            ("PWD=letmein", "letmein"),
        ] {
            hides(raw, secret);
        }
        // ordinary words containing those letters are left alone
        assert_eq!(s("signal: 9, status code: 403"), "signal: 9, status code: 403");
    }

    #[test]
    fn json_pairs() {
        hides(r#"{"client_secret":"abc~123","ok":true}"#, "abc~123");
        hides(r#"{"password" : "p\"w"}"#, "p\\\"w");
        hides(r#"{"pin_token": 123456}"#, "123456");
        assert_eq!(
            s(r#"{"id": "a1", "password": "x"}"#),
            r#"{"id": "a1", "password": "[redacted]"}"#
        );
    }

    #[test]
    fn emails() {
        hides("user admin@contoso.onmicrosoft.com lacks consent", "admin@contoso");
        hides("contact: first.last+tag@sub.example.co.uk.", "first.last");
    }

    #[test]
    fn long_blobs_but_not_uuids_words_or_paths() {
        let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        hides(&format!("digest {sha} used"), sha);
        hides("key q3Lk9+Zr/8Xw2Vb1Nn4Tt7Yy0Uu6Ii5Oo== end", "q3Lk9");
        let path = "https://graph.microsoft.com/beta/deviceManagement/deviceConfigurations/3f2504e0-4f89-11d3-9a0c-0305e82c3301/assignments";
        assert_eq!(s(path), path);
        hides("secretish Xy7Q~aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "aBcDeFgHiJk");
        let id = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
        assert_eq!(s(&format!("tenant {id} not found")), format!("tenant {id} not found"));
        let word = "Supercalifragilisticexpialidocious_and_more";
        assert_eq!(s(word), word);
        // few class switches by chance, but far too many distinct characters
        hides("key OryrlQJNZNtwzCpwa6TZIXJDUQYAbdok end", "OryrlQJNZNtwz");
        hides("key wYWHiteezEJezVPaRESYJHelmlhayzyy end", "wYWHiteezEJez");
        for ident in [
            "DeviceManagementConfigurationPolicy",
            "Win10EnterpriseSecurityBaseline2023",
            "windowsAutopilotDeploymentProfileAssignments",
            "windows10EndpointProtectionConfiguration",
            "windowsKioskConfigurationWithKeyboardLayout",
            "macOSCustomAppConfigurationForDeviceGroup",
        ] {
            assert_eq!(s(&format!("type {ident} failed")), format!("type {ident} failed"));
        }
    }

    #[test]
    fn hex_digests_of_any_length() {
        use sha2::{Digest, Sha256};
        for i in 0u32..500 {
            let hex = format!("{:x}", Sha256::digest(i.to_le_bytes()));
            for len in [32, 40, 64] {
                hides(&format!("x {} y", &hex[..len]), &hex[..len]);
            }
        }
    }

    #[test]
    fn private_keys() {
        hides(
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY----- trailing",
            "MIIEow",
        );
        hides("-----BEGIN PRIVATE KEY----- MIIEvQ unterminated", "MIIEvQ");
    }

    #[test]
    fn payloads_are_dropped_but_short_snippets_kept() {
        let payload = format!(
            r#"response {{"value": [{{"id": "1", "displayName": "{}"}}]}} end"#,
            "x".repeat(100)
        );
        let out = s(&payload);
        assert_eq!(out, "response [redacted-payload] end");
        assert_eq!(s(r#"got {"code": 400}"#), r#"got {"code": 400}"#);
    }

    #[test]
    fn control_characters_and_whitespace() {
        assert_eq!(s("a\r\n\tb\u{0}c   d"), "a b c d");
    }

    #[test]
    fn bounded_length_at_word_boundary() {
        let long = "word ".repeat(400);
        let out = s(&long);
        assert!(out.chars().count() <= MAX_MESSAGE_CHARS);
        assert!(out.ends_with("word…"), "{out}");
        let wide = "é".repeat(2000);
        let out = s(&wide);
        assert_eq!(out.chars().count(), MAX_MESSAGE_CHARS);
    }

    #[test]
    fn raw_input_is_bounded_before_matching() {
        let huge = format!("{}password=x", "a ".repeat(100_000));
        let out = s(&huge);
        assert!(out.chars().count() <= MAX_MESSAGE_CHARS);
    }

    fn secretish() -> impl Strategy<Value = String> {
        "[A-Za-z0-9]{12,24}".prop_filter("mixed", |v| {
            v.bytes().any(|b| b.is_ascii_digit()) && v.bytes().any(|b| b.is_ascii_alphabetic())
        })
    }

    /// A high-entropy secret as real keys are (shrinking cannot make it
    /// look like a word).
    fn random_key() -> impl Strategy<Value = String> {
        (any::<u64>(), 32usize..64).prop_map(|(seed, len)| {
            use sha2::{Digest, Sha256};
            let mut out = String::new();
            let mut block = Sha256::digest(seed.to_le_bytes());
            const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
            while out.len() < len {
                out.extend(block.iter().map(|b| ALPHABET[usize::from(*b) % 64] as char));
                block = Sha256::digest(block);
            }
            out.truncate(len);
            out
        })
    }

    proptest! {
        #[test]
        fn idempotent(raw in "\\PC{0,300}") {
            let once = s(&raw);
            prop_assert_eq!(s(&once), once.clone());
            prop_assert!(once.chars().count() <= MAX_MESSAGE_CHARS);
        }

        #[test]
        fn secrets_in_context_never_survive(
            before in "[a-zA-Z ,.:()]{0,80}",
            after in "[a-zA-Z ,.:()]{0,80}",
            secret in secretish(),
            shape in 0usize..7,
        ) {
            let wrapped = match shape {
                0 => format!("Bearer {secret}"),
                1 => format!("password={secret}"),
                2 => format!("\"client_secret\": \"{secret}\""),
                3 => format!("https://user:{secret}@host/path"),
                4 => format!("{}@example.com", secret.to_lowercase()),
                5 => format!("eyJ{secret}.{secret}.{secret}"),
                _ => format!("api_key: {secret}"),
            };
            let raw = format!("{before} {wrapped} {after}");
            let out = s(&raw);
            prop_assert!(!out.contains(&secret), "leaked {} in {}", secret, out);
            prop_assert!(!out.to_lowercase().contains(&secret.to_lowercase()) || shape != 4);
        }

        #[test]
        fn random_keys_never_survive(before in "[a-zA-Z ,.:()]{0,80}", key in random_key(), after in "[a-zA-Z ,.:()]{0,80}") {
            let out = s(&format!("{before} {key} {after}"));
            prop_assert!(!out.contains(&key[..16]), "leaked {} in {}", key, out);
        }
    }
}
