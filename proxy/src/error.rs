//! The one error type of `porten-proxy`. Every failure a request can meet is a variant here;
//! each dialect turns it into its own error shape in one place (`crate::dialects::*::error`).

/// Where a failure came from, so callers (and logs) can tell a bad request from a broken engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The client sent something we cannot serve; retrying the same request will not help.
    Client,
    /// The model engine failed while serving a valid request.
    Engine,
    /// porten itself: configuration, start-up, shutdown.
    Internal,
}

/// Everything that can go wrong in the proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field is missing, has the wrong type or an out-of-range value, or the body is not JSON.
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong, in words a client developer can act on.
        message: String,
        /// The offending field (`messages[0].role`), when there is one.
        param: Option<String>,
    },
    /// The request names a model this server does not serve.
    #[error("The model `{0}` does not exist")]
    ModelNotFound(String),
    /// The prompt leaves no room for an answer in the model's context.
    #[error("{}", context_message(*prompt_tokens, *max_tokens, *limit))]
    ContextLengthExceeded {
        /// Tokens in the prompt, after the chat template.
        prompt_tokens: usize,
        /// The output limit the request asked for, if any.
        max_tokens: Option<usize>,
        /// Tokens a sequence may hold.
        limit: usize,
    },
    /// A stored response that does not exist (or no longer does).
    #[error("Response with id `{0}` not found; stored responses are kept for a limited time")]
    ResponseNotFound(String),
    /// The model exists but cannot serve this kind of request (chat on an embedding model...).
    #[error("{0}")]
    WrongModelKind(String),
    /// No route matches the path.
    #[error("Unknown request URL: {method} {path}")]
    RouteNotFound {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },
    /// `GET /metrics` on a server whose metrics are turned off.
    #[error("Metrics are turned off on this server ([telemetry] prometheus = false or PORTEN_METRICS=off)")]
    MetricsOff,
    /// The path exists but not with this method.
    #[error("Method {method} is not allowed for {path}; allowed: {allowed}")]
    MethodNotAllowed {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
        /// The methods the route accepts, for the `Allow` header.
        allowed: &'static str,
    },
    /// API keys are configured and the request carried none, or a wrong one.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The body is larger than `server.max_body_bytes`.
    #[error("Request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The body did not arrive within `server.connections.body_timeout_secs` of its head.
    #[error("The request body did not arrive within {secs} s; send it whole, or faster")]
    RequestTimeout {
        /// The configured body timeout.
        secs: u64,
    },
    /// porten holds as many connections as it may, each with a request in flight.
    #[error(
        "The server is at its limit of {limit} open connections; retry after {retry_after_secs}s"
    )]
    TooManyConnections {
        /// `server.connections.max_connections` in force.
        limit: usize,
        /// The `Retry-After` hint in seconds.
        retry_after_secs: u64,
    },
    /// The model's request queue is full; the client should retry later.
    #[error("Model `{model}` is at capacity ({queued} requests queued); retry after {retry_after_secs}s")]
    Overloaded {
        /// The model asked for.
        model: String,
        /// How many requests were waiting.
        queued: usize,
        /// The `Retry-After` hint in seconds.
        retry_after_secs: u64,
    },
    /// The model failed to load; requests for it fail until the configuration is fixed.
    #[error("Model `{model}` is unavailable: {reason}")]
    ModelUnavailable {
        /// The model asked for.
        model: String,
        /// Why it could not be loaded.
        reason: String,
    },
    /// The model needs more memory than the whole budget; it can never be loaded here.
    #[error(
        "Model `{model}` needs {} MiB but the memory budget is {} MiB; it can never be loaded \
         here. Raise PORTEN_VRAM_BUDGET_MB, lower its context_length or max_concurrency, or use \
         a smaller quantization",
        need.div_ceil(1 << 20),
        budget >> 20
    )]
    WillNotFit {
        /// The model asked for.
        model: String,
        /// Bytes it needs.
        need: u64,
        /// The budget in bytes.
        budget: u64,
    },
    /// The model fits the budget, but other processes hold memory porten counted on and no
    /// device can take it now; the client should retry later.
    #[error(
        "Model `{model}` needs {} MiB, but other processes hold memory on this machine's \
         devices and the most any of them can take now is {} MiB; retry after \
         {retry_after_secs}s",
        need.div_ceil(1 << 20),
        available >> 20
    )]
    MemoryTaken {
        /// The model asked for.
        model: String,
        /// Bytes it needs.
        need: u64,
        /// The largest device's limit now, in bytes.
        available: u64,
        /// The `Retry-After` hint in seconds.
        retry_after_secs: u64,
    },
    /// The server is shutting down and takes no new work.
    #[error("The server is shutting down")]
    ShuttingDown,
    /// The model cannot be changed that way now (deleting one that is loaded or pinned).
    #[error("{0}")]
    ModelBusy(String),
    /// Something this server does not do, with what to do instead.
    #[error("{0}")]
    Unsupported(String),
    /// The model store failed (a pull, a copy, a deletion), with its reason.
    #[error("{0}")]
    Store(String),
    /// The engine failed while serving a valid request.
    #[error("The model engine failed: {0}")]
    Engine(String),
    /// The configuration is invalid (a model path that does not exist, a bad listen address...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A model could not be loaded at start-up.
    #[error("cannot load model `{id}` from {path}: {reason}")]
    ModelLoad {
        /// The model id from the configuration.
        id: String,
        /// Where the weights were expected.
        path: String,
        /// The engine's reason.
        reason: String,
    },
    /// An I/O failure of the server itself (binding the listener, say).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

fn context_message(prompt_tokens: usize, max_tokens: Option<usize>, limit: usize) -> String {
    let asked = match max_tokens {
        Some(n) => format!(", and {n} tokens were asked for the answer"),
        None => String::new(),
    };
    format!(
        "This model's maximum context length is {limit} tokens. However, your messages resulted \
         in {prompt_tokens} tokens{asked}, which leaves no room for an answer. Please reduce the \
         length of the messages (or raise the model's context_length)."
    )
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A 400 for `param` with `message`.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidRequest {
            message: message.into(),
            param: Some(param.into()),
        }
    }

    /// Where the failure came from.
    pub fn origin(&self) -> Origin {
        match self {
            Error::InvalidRequest { .. }
            | Error::ModelNotFound(_)
            | Error::ContextLengthExceeded { .. }
            | Error::ResponseNotFound(_)
            | Error::WrongModelKind(_)
            | Error::RouteNotFound { .. }
            | Error::MetricsOff
            | Error::MethodNotAllowed { .. }
            | Error::Unauthorized(_)
            | Error::PayloadTooLarge { .. }
            | Error::RequestTimeout { .. }
            | Error::ModelBusy(_)
            | Error::Unsupported(_) => Origin::Client,
            Error::Engine(_)
            | Error::ModelUnavailable { .. }
            | Error::ModelLoad { .. }
            | Error::WillNotFit { .. } => Origin::Engine,
            Error::Overloaded { .. }
            | Error::TooManyConnections { .. }
            | Error::MemoryTaken { .. }
            | Error::ShuttingDown
            | Error::Config(_)
            | Error::Store(_)
            | Error::Io(_) => Origin::Internal,
        }
    }

    /// Whether the same request may succeed later without any change.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Overloaded { .. }
                | Error::TooManyConnections { .. }
                | Error::MemoryTaken { .. }
                | Error::ShuttingDown
        )
    }
}
