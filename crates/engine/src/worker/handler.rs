//! What an operation handler is: one module per operation type behind one
//! trait (the shape of mini-redis's commands), looked up in a [`Registry`].
//!
//! A type's module implements [`Operation`]: its [`TypeSpec`], its typed
//! parameters (`TryFrom<&Params>`, the same code the edge runs through
//! [`TypeSpec::check`]) and its work. The registry erases it into a
//! [`Handler`] and gathers the specs into the build's [`Catalog`], which is
//! what the engine offers, starts and claims.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use tenantatlas_domain::FieldError;
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::catalog::{Catalog, OperationType, TypeSet, TypeSpec};
use tenantatlas_domain::lifecycle::Outcome;
use tenantatlas_domain::params::Params;
use tenantatlas_domain::reason::{Failure, ReasonCode};

use super::context::RunContext;

/// How a handler's work ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Done {
    /// Counted work: the outcome is what the units earned (law 4).
    FromUnits,
    /// Everything was done.
    Succeeded,
    /// An explicit outcome.
    Outcome(Outcome, Option<ReasonCode>, Vec<Failure>),
}

/// Why a handler stopped without finishing.
#[derive(Clone, Debug, PartialEq)]
pub enum HandlerError {
    /// Trying again later may succeed (throttling, an outage): the run goes
    /// back to the queue with backoff, up to its type's attempt limit —
    /// and not before `not_before` when the failure says when (a provider's
    /// `Retry-After`, law 12).
    Retryable {
        /// What went wrong.
        failure: Failure,
        /// The earliest instant the next attempt may start.
        not_before: Option<Timestamp>,
    },
    /// Trying again will not help: the run fails with this reason.
    Fatal(Failure),
    /// A precondition is not met: the run is blocked, nothing changed.
    Blocked(String),
    /// The run was cancelled, fenced or released while working; the worker
    /// knows which and acts on it.
    Stopped,
}

impl HandlerError {
    /// A retryable failure with `code` and a message.
    pub fn retryable(code: ReasonCode, message: &str) -> Self {
        HandlerError::Retryable {
            failure: Failure::new(code, message),
            not_before: None,
        }
    }

    /// This retryable failure, to be retried no earlier than `at` (the
    /// worker requeues at the later of its backoff and `at`). Other
    /// errors are returned unchanged.
    #[must_use]
    pub fn not_before(self, at: Timestamp) -> Self {
        match self {
            HandlerError::Retryable { failure, .. } => HandlerError::Retryable {
                failure,
                not_before: Some(at),
            },
            other => other,
        }
    }

    /// A fatal failure with `code` and a message.
    pub fn fatal(code: ReasonCode, message: &str) -> Self {
        HandlerError::Fatal(Failure::new(code, message))
    }
}

/// The work of one operation type.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Does the run's work through `ctx`: plan units (or phases), execute
    /// them, report results. Must return promptly once `ctx` says the run
    /// was stopped.
    async fn run(&self, ctx: &mut RunContext) -> Result<Done, HandlerError>;
}

/// One operation type's home: its spec, its typed parameters and its work.
#[async_trait]
pub trait Operation: Send + Sync + 'static {
    /// Its spec; `SPEC.check` is
    /// [`accepts::<Self::Params>`](tenantatlas_domain::catalog::accepts),
    /// so that the edge refuses what the handler could not parse.
    const SPEC: &'static TypeSpec;

    /// Its parameters, typed: parsed from the run's validated [`Params`].
    type Params: for<'a> TryFrom<&'a Params, Error = FieldError> + Send;

    /// Does the run's work (see [`Handler::run`]).
    async fn run(&self, ctx: &mut RunContext, params: Self::Params) -> Result<Done, HandlerError>;
}

/// An [`Operation`] as a [`Handler`]: parses the typed parameters, then runs.
struct Typed<O>(O);

#[async_trait]
impl<O: Operation> Handler for Typed<O> {
    async fn run(&self, ctx: &mut RunContext) -> Result<Done, HandlerError> {
        let params = O::Params::try_from(ctx.params()).map_err(|e| {
            // Stored by a build whose rules were looser: nothing to retry.
            HandlerError::fatal(
                ReasonCode::InternalError,
                &format!("the run's parameters are not valid for this build: {e}"),
            )
        })?;
        self.0.run(ctx, params).await
    }
}

/// The handlers a worker can execute, by operation type.
/// The handlers a worker can execute, by operation type.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<OperationType, Arc<dyn Handler>>,
    catalog: Catalog,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.types().iter().map(OperationType::as_str))
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers an operation type's home.
    #[must_use]
    pub fn with<O: Operation>(self, op: O) -> Self {
        self.with_handler(O::SPEC, Typed(op))
    }

    /// Registers an untyped handler for `spec`'s type (one that reads
    /// [`RunContext::params`] itself: test doubles, stand-ins).
    #[must_use]
    pub fn with_handler(mut self, spec: &'static TypeSpec, handler: impl Handler) -> Self {
        self.handlers.insert(spec.op, Arc::new(handler));
        self.catalog = self.catalog.with(spec);
        self
    }

    /// The handler of `op`.
    pub fn get(&self, op: OperationType) -> Option<Arc<dyn Handler>> {
        self.handlers.get(&op).cloned()
    }

    /// The types this registry executes: the only ones a worker claims,
    /// and the only ones the engine offers and starts
    /// ([`EngineConfig::catalog`](crate::EngineConfig::catalog)).
    pub fn types(&self) -> TypeSet {
        self.catalog.types()
    }

    /// The specs of its types: the build's catalog
    /// ([`EngineConfig::catalog`](crate::EngineConfig::catalog)).
    pub fn catalog(&self) -> Catalog {
        self.catalog
    }
}
