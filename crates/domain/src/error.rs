//! The one shape of a bad-input error: which field, which rule.

use std::fmt;

/// Bad input, naming the field and the rule it broke.
///
/// Every parser at the edge (CLI, HTTP) turns request data into domain types
/// and reports failures with this type, so the message a user sees always
/// says *what* was wrong and *where*.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field (parameter, argument, JSON key) that was rejected.
    pub field: String,
    /// The rule it broke, phrased for a person.
    pub rule: String,
}

impl FieldError {
    /// Builds an error for `field` that broke `rule`. Both may quote what
    /// was sent (an unknown parameter's name, a rejected value), so both
    /// pass through the failure sanitizer (law 8): an error never echoes a
    /// credential back.
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: crate::sanitize::SafeText::sanitize(&field.into()).into_string(),
            rule: crate::sanitize::SafeText::sanitize(&rule.into()).into_string(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

impl std::error::Error for FieldError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_never_echoes_a_credential() {
        let e = FieldError::new(
            "params.Authorization: Bearer ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "unknown parameter; allowed: units",
        );
        assert!(!e.to_string().contains("ghp_"), "{e}");
        assert!(e.field.starts_with("params.Authorization"), "{e}");
        let e = FieldError::new("email", "password=hunter2-secret is not an address");
        assert!(!e.rule.contains("hunter2"), "{e}");
    }
}
