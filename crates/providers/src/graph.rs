//! The Microsoft Graph provider.
