//! The error envelope of SPEC §5: every failure a request can meet becomes
//! one `ApiError`, mapped to a status and a JSON body in exactly one place.

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Auth,
    InvalidParameters,
    InvalidContentType,
    NotFound,
    Permissions,
    Credentials,
    Conflict,
    PreconditionFailed,
    PayloadTooLarge,
    MethodNotSupported,
    Security,
    RateLimitExceeded,
    LockTimeout,
    /// The database stayed unavailable (throttled, failing) through the
    /// client's retries: 503 with `Retry-After` (issue 22).
    Unavailable,
    Unknown,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::Auth => 401,
            ErrorKind::InvalidParameters => 400,
            ErrorKind::InvalidContentType => 415,
            ErrorKind::NotFound => 404,
            ErrorKind::Permissions | ErrorKind::Credentials => 403,
            ErrorKind::Conflict => 409,
            ErrorKind::PreconditionFailed => 412,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::MethodNotSupported => 405,
            ErrorKind::Security => 426,
            ErrorKind::RateLimitExceeded | ErrorKind::LockTimeout => 429,
            ErrorKind::Unavailable => 503,
            ErrorKind::Unknown => 500,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Auth => "AUTH_ERROR",
            ErrorKind::InvalidParameters => "INVALID_PARAMETERS",
            ErrorKind::InvalidContentType => "INVALID_CONTENT_TYPE",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::Permissions => "PERMISSIONS_ERROR",
            ErrorKind::Credentials => "CREDENTIALS_ERROR",
            ErrorKind::Conflict => "CONFLICT",
            ErrorKind::PreconditionFailed => "PRECONDITION_FAILED",
            ErrorKind::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorKind::MethodNotSupported => "METHOD_NOT_SUPPORTED",
            ErrorKind::Security => "SECURITY_ERROR",
            ErrorKind::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            ErrorKind::LockTimeout => "LOCK_TIMEOUT",
            ErrorKind::Unavailable => "SERVICE_UNAVAILABLE",
            ErrorKind::Unknown => "UNKNOWN_ERROR",
        }
    }

    pub const ALL: [ErrorKind; 15] = [
        ErrorKind::Auth,
        ErrorKind::InvalidParameters,
        ErrorKind::InvalidContentType,
        ErrorKind::NotFound,
        ErrorKind::Permissions,
        ErrorKind::Credentials,
        ErrorKind::Conflict,
        ErrorKind::PreconditionFailed,
        ErrorKind::PayloadTooLarge,
        ErrorKind::MethodNotSupported,
        ErrorKind::Security,
        ErrorKind::RateLimitExceeded,
        ErrorKind::LockTimeout,
        ErrorKind::Unavailable,
        ErrorKind::Unknown,
    ];
}

/// One invalid input: which field (dotted path) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    pub errors: Vec<FieldError>,
    /// Extra response headers (e.g. `Allow` on 405).
    pub headers: Vec<(&'static str, String)>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameters, message)
    }

    /// 400 naming one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::fields(vec![FieldError::new(field, message)])
    }

    /// 400 listing every invalid field.
    pub fn fields(errors: Vec<FieldError>) -> Self {
        let message = match errors.as_slice() {
            [one] => format!("Invalid `{}`: {}", one.field, one.message),
            many => format!(
                "{} fields are invalid: {}",
                many.len(),
                many.iter()
                    .map(|e| format!("`{}`", e.field))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        ApiError {
            kind: ErrorKind::InvalidParameters,
            message,
            errors,
            headers: Vec::new(),
        }
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(ErrorKind::NotFound, format!("No {what} with id `{id}`."))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    pub fn internal() -> Self {
        Self::new(
            ErrorKind::Unknown,
            "Something went wrong on our side. Quote the eventId if you contact support.",
        )
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(&self, event_id: &str) -> Value {
        let mut v = json!({
            "name": self.kind.name(),
            "message": self.message,
            "eventId": event_id,
        });
        if !self.errors.is_empty() {
            v["errors"] = self
                .errors
                .iter()
                .map(|e| json!({"field": e.field, "message": e.message}))
                .collect();
        }
        v
    }
}
