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
    /// Builds an error for `field` that broke `rule`.
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

impl std::error::Error for FieldError {}
