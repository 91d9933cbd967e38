//! The store's error type: the engine port's, so that the engine needs no
//! conversion.

pub use tenantatlas_engine::port::{Result, StoreError};
