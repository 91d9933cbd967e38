//! `tenantatlas-mockgraph`.
fn main() {}
