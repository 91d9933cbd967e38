//! Answers in Graph's shapes: the error envelope every Graph failure uses,
//! the headers Graph sends, and the conversion to an HTTP response (or to
//! one item of a `$batch` answer).

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// The content type Graph answers JSON with.
pub(crate) const GRAPH_JSON: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// One answer, before it becomes an HTTP response or a `$batch` item.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    /// The status.
    pub status: StatusCode,
    /// Extra headers (`Retry-After`, `WWW-Authenticate`, …).
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body, if any.
    pub body: Option<Value>,
    /// Whether the body is Graph's error envelope, which gets its
    /// `innerError` (date and request ids) when the answer is finished.
    graph_error: bool,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: StatusCode, body: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(body),
            graph_error: false,
        }
    }

    /// `204 No Content`.
    pub fn no_content() -> Reply {
        Reply {
            status: StatusCode::NO_CONTENT,
            headers: Vec::new(),
            body: None,
            graph_error: false,
        }
    }

    /// Graph's error envelope: `{"error": {"code", "message", "innerError"}}`.
    pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(json!({"error": {"code": code, "message": message.into()}})),
            graph_error: true,
        }
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Reply {
        Reply::error(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 404 for an object that does not exist (Intune's `ResourceNotFound`,
    /// the directory's `Request_ResourceNotFound` for groups).
    pub fn not_found(directory: bool, id: &str) -> Reply {
        if directory {
            Reply::error(
                StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                format!(
                    "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
                ),
            )
        } else {
            Reply::error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                format!("No object with id '{id}' was found."),
            )
        }
    }

    /// 400 for a path segment Graph does not know.
    pub fn segment_not_found(segment: &str) -> Reply {
        Reply::bad_request(format!("Resource not found for the segment '{segment}'."))
    }

    /// 403 naming the application permission that would allow the call.
    pub fn forbidden(permission: &str, directory: bool) -> Reply {
        let message = format!(
            "Application is not authorized to perform this operation. Application must have one of the following scopes: {permission}"
        );
        if directory {
            Reply::error(StatusCode::FORBIDDEN, "Authorization_RequestDenied", message)
        } else {
            Reply::error(StatusCode::FORBIDDEN, "Forbidden", message)
        }
    }

    /// 429 with Graph's body, and `Retry-After` when one is given.
    pub fn throttled(retry_after: Option<&str>) -> Reply {
        let mut r = Reply::error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests: the request rate limit for this tenant was exceeded. Retry after the time in the Retry-After header.",
        );
        if let Some(s) = retry_after {
            r.headers.push(("Retry-After", s.to_owned()));
        }
        r
    }

    /// 401 `InvalidAuthenticationToken`.
    pub fn unauthenticated(message: &str) -> Reply {
        let mut r = Reply::error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", message);
        r.headers.push((
            "WWW-Authenticate",
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"".to_owned(),
        ));
        r
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// Fills in what every Graph answer carries: the request ids as
    /// headers, and the `innerError` of an error body.
    pub fn finish(mut self, ctx: &RequestIds) -> Reply {
        if self.graph_error
            && let Some(Value::Object(err)) = self.body.as_mut().and_then(|b| b.get_mut("error"))
        {
            err.insert(
                "innerError".to_owned(),
                json!({
                    "date": ctx.date,
                    "request-id": ctx.request_id,
                    "client-request-id": ctx.client_request_id,
                }),
            );
        }
        self.headers.push(("request-id", ctx.request_id.clone()));
        self.headers.push(("client-request-id", ctx.client_request_id.clone()));
        self
    }

    /// The headers of a `$batch` item: the extra headers plus the content
    /// type when there is a body.
    pub fn batch_headers(&self) -> Value {
        let mut m = Map::new();
        if self.body.is_some() {
            m.insert("Content-Type".to_owned(), json!(GRAPH_JSON));
        }
        for (k, v) in &self.headers {
            m.insert((*k).to_owned(), json!(v));
        }
        Value::Object(m)
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let body = match &self.body {
            Some(v) => serde_json::to_vec(v).unwrap_or_default(),
            None => Vec::new(),
        };
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        if self.body.is_some() {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(GRAPH_JSON));
        }
        for (k, v) in self.headers {
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(k), HeaderValue::from_str(&v)) {
                h.insert(name, value);
            }
        }
        resp
    }
}

/// The ids Graph puts on every answer.
#[derive(Clone, Debug)]
pub(crate) struct RequestIds {
    /// A new id for this request.
    pub request_id: String,
    /// The caller's `client-request-id`, or the request id.
    pub client_request_id: String,
    /// When (UTC, `2026-01-01T12:00:00`).
    pub date: String,
}

impl RequestIds {
    /// Ids for a request that sent `client` as its `client-request-id`.
    pub fn new(client: Option<&str>) -> RequestIds {
        let request_id = new_guid();
        let client_request_id = client
            .filter(|c| !c.is_empty() && c.len() <= 100)
            .map(str::to_owned)
            .unwrap_or_else(|| request_id.clone());
        let date = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]"
            ))
            .unwrap_or_default();
        RequestIds {
            request_id,
            client_request_id,
            date,
        }
    }
}

/// A new random GUID, as Graph gives new objects.
pub(crate) fn new_guid() -> String {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string()
}

/// Now, as Graph writes `createdDateTime` (RFC 3339, UTC).
pub(crate) fn now_timestamp() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
