//! The directory provider: a tenant folder ([`crate::fixture`]) served like
//! Graph, writes into its overlay.
