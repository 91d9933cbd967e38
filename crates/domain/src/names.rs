//! Parsing of the names and credentials people type: workspace and tenant
//! names, e-mail addresses, passwords, tenant provider specs.

use std::fmt;

use crate::FieldError;

/// Text people type for others to read — names of workspaces, tenants,
/// tokens, schedules — trimmed and in Unicode NFC, so that two names that
/// look the same are the same. Control and format characters (Unicode Cc
/// and Cf: zero-width spaces and joiners, bidirectional overrides, soft
/// hyphens…) are refused: they make visually identical twins and reorder
/// what a reader sees. At most `max` characters.
pub fn printable_text(field: &str, s: &str, max: usize) -> Result<String, FieldError> {
    use unicode_normalization::UnicodeNormalization as _;
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};
    let t: String = s.trim().nfc().collect();
    if t.is_empty() || t.chars().count() > max {
        return Err(FieldError::new(field, format!("must be 1-{max} characters")));
    }
    if t.chars().any(char::is_control) {
        return Err(FieldError::new(field, "must not contain control characters"));
    }
    if t.chars().any(|c| c.general_category() == GeneralCategory::Format) {
        return Err(FieldError::new(
            field,
            "must not contain invisible formatting characters (zero-width or bidirectional marks)",
        ));
    }
    Ok(t)
}

fn display_name(field: &str, s: &str) -> Result<String, FieldError> {
    let t = printable_text(field, s, 64)?;
    if uuid::Uuid::parse_str(&t).is_ok() {
        return Err(FieldError::new(field, "must not look like an id (a UUID)"));
    }
    Ok(t)
}

/// A workspace name: 1–64 printable characters, unique.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceName(String);

impl WorkspaceName {
    /// Parses a workspace name.
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        display_name(field, s).map(Self)
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tenant name: 1–64 printable characters, unique within its workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantName(String);

impl TenantName {
    /// Parses a tenant name.
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        display_name(field, s).map(Self)
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A normalised (lower-case) e-mail address.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses an e-mail address: RFC 5322's `addr-spec` as the
    /// `email_address` crate reads it, with a dotted domain name (no
    /// display name, no `[ip]` literal), lower-cased.
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        let t = s.trim().to_lowercase();
        let bad = || FieldError::new(field, "must be an e-mail address such as ops@example.com");
        let options = email_address::Options::default()
            .with_required_tld()
            .without_domain_literal()
            .without_display_text();
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        email_address::EmailAddress::parse_with_options(&t, options).map_err(|_| bad())?;
        Ok(Self(t))
    }
    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Addresses are personal data: keep them out of debug output.
        f.write_str("Email(..)")
    }
}

/// A password as typed; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Shortest accepted length, in characters.
    pub const MIN_CHARS: usize = 12;
    /// Longest accepted length, in characters.
    pub const MAX_CHARS: usize = 128;

    /// Checks length rules (OWASP ASVS: at least 12, at most 128 characters,
    /// any characters allowed).
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        let n = s.chars().count();
        if n < Self::MIN_CHARS {
            return Err(FieldError::new(field, "must be at least 12 characters"));
        }
        if n > Self::MAX_CHARS {
            return Err(FieldError::new(field, "must be at most 128 characters"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The secret itself; only for hashing and verification.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// The application (client) id of an Entra app registration: a GUID,
/// kept lower-case and hyphenated. Not a secret.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    /// Parses a GUID such as `3f2504e0-4f89-11d3-9a0c-0305e82c3301` (the
    /// "Application (client) ID" of the app registration).
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        uuid::Uuid::parse_str(s.trim())
            .map(|u| Self(u.hyphenated().to_string()))
            .map_err(|_| {
                FieldError::new(
                    field,
                    "must be the app registration's application (client) id, a GUID such as 3f2504e0-4f89-11d3-9a0c-0305e82c3301",
                )
            })
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An app registration's client secret. `Debug` and `Display` never show
/// it, and its memory is wiped when it is dropped, so that a log line, a
/// panic message or a freed page does not carry it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(zeroize::Zeroizing<String>);

impl ClientSecret {
    /// Longest accepted length, in characters (Entra's secrets are about
    /// 40; certificates are not secrets of this kind).
    pub const MAX_CHARS: usize = 1024;

    /// Checks a secret as read (surrounding whitespace removed): not empty,
    /// at most [`Self::MAX_CHARS`] characters, no control characters. The
    /// error never quotes it.
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(FieldError::new(field, "must not be empty"));
        }
        if t.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new(field, "must be at most 1024 characters"));
        }
        if t.chars().any(char::is_control) {
            return Err(FieldError::new(field, "must be one line without control characters"));
        }
        Ok(Self(zeroize::Zeroizing::new(t.to_owned())))
    }

    /// The secret itself: only to seal it and to send it to the token
    /// endpoint.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

impl fmt::Display for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How long an API token works: whole hours or days, from one hour to
/// two years (`12h`, `30d`). A token that must live longer is renewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenLifetime(std::time::Duration);

impl TokenLifetime {
    const MAX_HOURS: u64 = 2 * 366 * 24;

    /// Parses `<n>h` or `<n>d`.
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        const RULE: &str = "must be a number of hours or days, like 12h or 90d (1h to 732d)";
        let s = s.trim();
        let (n, unit) = s.split_at(s.len().saturating_sub(1));
        let hours = match (n.parse::<u64>(), unit) {
            (Ok(n), "h" | "H") => n,
            (Ok(n), "d" | "D") => n.saturating_mul(24),
            _ => return Err(FieldError::new(field, RULE)),
        };
        if !(1..=Self::MAX_HOURS).contains(&hours) {
            return Err(FieldError::new(field, RULE));
        }
        Ok(Self(std::time::Duration::from_secs(hours * 3600)))
    }

    /// From a number of days (the API's `expires_in_days`).
    pub fn days(field: &str, days: u64) -> Result<Self, FieldError> {
        Self::parse(field, &format!("{days}d"))
    }

    /// The lifetime.
    pub fn duration(self) -> std::time::Duration {
        self.0
    }
}

/// A DNS name as Entra verifies tenant domains: two or more labels of
/// letters, digits and inner hyphens, at most 63 characters each, the last
/// not all digits (so not an IP address).
fn is_domain(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    labels.len() >= 2
        && s.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels.last().is_some_and(|l| !l.bytes().all(|b| b.is_ascii_digit()))
}

/// Where a tenant's data comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderSpec {
    /// Tenant data as JSON files under a directory (embedded default, demo).
    Directory(String),
    /// Microsoft Graph for this Entra tenant (id or primary domain).
    Graph(String),
}

impl ProviderSpec {
    /// Parses `directory:PATH` or `graph:TENANT` (an Entra tenant id or a
    /// domain). Credentials are never part of a spec.
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        let t = s.trim();
        let rule = "must be directory:PATH or graph:TENANT (an Entra tenant id or domain)";
        let (kind, rest) = t.split_once(':').ok_or_else(|| FieldError::new(field, rule))?;
        let rest = rest.trim();
        if rest.is_empty() || rest.len() > 512 || rest.chars().any(char::is_control) {
            return Err(FieldError::new(field, rule));
        }
        match kind {
            "directory" => Ok(ProviderSpec::Directory(rest.to_owned())),
            "graph" => {
                let ok = uuid::Uuid::parse_str(rest).is_ok() || is_domain(rest);
                if ok {
                    Ok(ProviderSpec::Graph(rest.to_ascii_lowercase()))
                } else {
                    Err(FieldError::new(field, rule))
                }
            }
            _ => Err(FieldError::new(field, rule)),
        }
    }

    /// The canonical text form.
    pub fn to_spec_string(&self) -> String {
        match self {
            ProviderSpec::Directory(p) => format!("directory:{p}"),
            ProviderSpec::Graph(t) => format!("graph:{t}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_invisible_characters_and_are_nfc() {
        for twin in [
            "Contoso\u{200B}", // zero-width space
            "Con\u{200D}toso", // zero-width joiner
            "\u{202E}osotnoC", // right-to-left override
            "Contoso\u{2066}", // left-to-right isolate
            "Con\u{00AD}toso", // soft hyphen
            "\u{FEFF}Contoso", // byte order mark
            "Contoso\u{0007}", // bell (Cc)
        ] {
            let e = TenantName::parse("name", twin).unwrap_err();
            assert_eq!(e.field, "name", "{twin:?}");
        }
        // e + combining acute is the same name as é
        let decomposed = WorkspaceName::parse("name", "Cafe\u{0301}").unwrap();
        let composed = WorkspaceName::parse("name", "Caf\u{00E9}").unwrap();
        assert_eq!(decomposed, composed);
        assert_eq!(composed.as_str().chars().count(), 4);
        // what people really write stays accepted
        for ok in [
            "Contoso MSP",
            "Zürich AG",
            "東京オフィス",
            "O'Brien & Co.",
            "Étoile-Nord",
        ] {
            assert!(TenantName::parse("name", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn e_mail_addresses_follow_rfc_5322_with_a_dotted_domain() {
        for ok in [
            "ops@example.com",
            "First.Last+tag@sub.example.co.uk",
            "o'brien@example.ie",
            "user_name-1@example.io",
            "jörg.müller@example.de",
        ] {
            assert!(Email::parse("email", ok).is_ok(), "{ok}");
        }
        assert_eq!(
            Email::parse("email", " Ops@Example.COM ").unwrap().as_str(),
            "ops@example.com"
        );
        for bad in [
            "",
            "ops",
            "ops@",
            "@example.com",
            "ops@localhost",
            "ops@[127.0.0.1]",
            "Ops <ops@example.com>",
            "two@@example.com",
            "ops@example..com",
            "a b@example.com",
            "ops@-example.com",
        ] {
            assert_eq!(Email::parse("email", bad).unwrap_err().field, "email", "{bad:?}");
        }
    }

    #[test]
    fn token_lifetimes_are_hours_or_days_within_bounds() {
        let h = |s: &str| TokenLifetime::parse("expires_in", s).map(|l| l.duration().as_secs() / 3600);
        assert_eq!(h("12h"), Ok(12));
        assert_eq!(h("30d"), Ok(720));
        assert_eq!(h(" 1H "), Ok(1));
        assert_eq!(h("732d"), Ok(732 * 24));
        for bad in [
            "",
            "d",
            "0h",
            "0d",
            "733d",
            "1.5d",
            "-1d",
            "30",
            "30m",
            "99999999999999999999d",
            "1 d",
        ] {
            let e = TokenLifetime::parse("expires_in", bad).unwrap_err();
            assert_eq!(e.field, "expires_in", "{bad:?}");
        }
        assert!(TokenLifetime::days("expires_in_days", 90).is_ok());
        assert!(TokenLifetime::days("expires_in_days", 0).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(
            WorkspaceName::parse("name", "  Contoso MSP ").unwrap().as_str(),
            "Contoso MSP"
        );
        assert_eq!(WorkspaceName::parse("name", "").unwrap_err().field, "name");
        assert!(WorkspaceName::parse("name", &"x".repeat(65)).is_err());
        assert!(
            TenantName::parse("name", "a\u{7}b")
                .unwrap_err()
                .rule
                .contains("control")
        );
        assert!(
            TenantName::parse("name", "3f2504e0-4f89-11d3-9a0c-0305e82c3301")
                .unwrap_err()
                .rule
                .contains("UUID")
        );
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse("email", " Ops@Example.COM ").unwrap().as_str(),
            "ops@example.com"
        );
        for bad in ["", "x", "a@b", "a@@b.c", "@b.co", "a b@c.de", "a@.c", "a@c.", "a@c..d"] {
            assert_eq!(Email::parse("email", bad).unwrap_err().field, "email", "{bad}");
        }
        assert_eq!(format!("{:?}", Email::parse("e", "a@b.co").unwrap()), "Email(..)");
    }

    #[test]
    fn passwords() {
        assert!(Password::parse("password", "short").unwrap_err().rule.contains("12"));
        assert!(Password::parse("password", &"x".repeat(129)).is_err());
        let p = Password::parse("password", "correct horse battery").unwrap();
        assert_eq!(p.expose(), "correct horse battery");
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[test]
    fn client_ids_are_guids_and_secrets_never_show() {
        let id = ClientId::parse("client-id", " 3F2504E0-4F89-11D3-9A0C-0305E82C3301 ").unwrap();
        assert_eq!(id.as_str(), "3f2504e0-4f89-11d3-9a0c-0305e82c3301");
        for bad in ["", "app", "3f2504e0-4f89-11d3-9a0c", "contoso.onmicrosoft.com"] {
            assert_eq!(
                ClientId::parse("client-id", bad).unwrap_err().field,
                "client-id",
                "{bad:?}"
            );
        }
        let s = ClientSecret::parse("secret", "  s3cr3t~value.with-stuff \n").unwrap();
        assert_eq!(s.expose(), "s3cr3t~value.with-stuff");
        assert!(!format!("{s:?}").contains("s3cr3t"));
        assert_eq!(s.to_string(), "[redacted]");
        for bad in ["", "   \n", "two\u{7}lines"] {
            let e = ClientSecret::parse("secret", bad).unwrap_err();
            assert_eq!(e.field, "secret");
            assert!(!e.rule.contains("two"), "the error never quotes the secret");
        }
        assert!(ClientSecret::parse("secret", &"x".repeat(1025)).is_err());
    }

    #[test]
    fn provider_specs() {
        assert_eq!(
            ProviderSpec::parse("provider", "directory:/srv/tenants/contoso").unwrap(),
            ProviderSpec::Directory("/srv/tenants/contoso".into())
        );
        assert_eq!(
            ProviderSpec::parse("provider", "graph:Contoso.onmicrosoft.com")
                .unwrap()
                .to_spec_string(),
            "graph:contoso.onmicrosoft.com"
        );
        assert!(ProviderSpec::parse("provider", "graph:3f2504e0-4f89-11d3-9a0c-0305e82c3301").is_ok());
        for bad in [
            "",
            "directory:",
            "graph:not a tenant",
            "ftp:x",
            "graph",
            "graph:1.2.3.4",
            "graph:a..b.com",
            "graph:-x.com",
            "graph:x-.com",
            "graph:contoso",
        ] {
            assert_eq!(
                ProviderSpec::parse("provider", bad).unwrap_err().field,
                "provider",
                "{bad}"
            );
        }
    }
}
