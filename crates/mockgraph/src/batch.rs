//! `POST /beta/$batch`: at most 20 requests, each run through the same
//! [`graph::handle`] as a direct request (faults, throttling, permissions
//! and the log included), each answered with its own status, headers
//! (a throttled item carries its own `Retry-After`) and body. Items run in
//! order; an item whose `dependsOn` names a failed item is answered 424.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::graph::{self, Body, Call};
use crate::log::{Entry, RequestKind};
use crate::reply::{Reply, RequestIds};
use crate::state::Shared;

/// Graph's limit on requests in one batch.
pub const MAX_BATCH: usize = 20;

/// One parsed item.
struct Item {
    id: String,
    method: String,
    url: String,
    headers: HashMap<String, String>,
    body: Option<Value>,
    depends_on: Vec<String>,
}

fn parse_items(body: &Body) -> Result<Vec<Item>, Reply> {
    let doc = match body {
        Body::Json(v) => v,
        Body::None => return Err(Reply::bad_request("Empty Payload. JSON content expected.")),
        Body::Invalid(why) => {
            return Err(Reply::bad_request(format!(
                "The request body is not valid JSON: {why}."
            )));
        }
        Body::NotJson => {
            return Err(Reply::error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "A $batch body must be JSON, sent with Content-Type: application/json.",
            ));
        }
    };
    let Some(requests) = doc.get("requests").and_then(Value::as_array) else {
        return Err(Reply::bad_request("A $batch body is {\"requests\": [...]}."));
    };
    if requests.len() > MAX_BATCH {
        return Err(Reply::bad_request(format!(
            "The batch holds {} requests; the limit is {MAX_BATCH}.",
            requests.len()
        )));
    }
    let mut items: Vec<Item> = Vec::with_capacity(requests.len());
    for (i, r) in requests.iter().enumerate() {
        let field = |k: &str| r.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let (Some(id), Some(method), Some(url)) = (field("id"), field("method"), field("url")) else {
            return Err(Reply::bad_request(format!(
                "requests[{i}] needs a string 'id', 'method' and 'url'."
            )));
        };
        if items.iter().any(|it| it.id == id) {
            return Err(Reply::bad_request(format!(
                "The batch holds the request id '{id}' twice."
            )));
        }
        let mut headers = HashMap::new();
        match r.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(h)) => {
                for (k, v) in h {
                    let Some(v) = v.as_str() else {
                        return Err(Reply::bad_request(format!(
                            "requests[{i}].headers.{k} must be a string."
                        )));
                    };
                    headers.insert(k.to_ascii_lowercase(), v.to_owned());
                }
            }
            Some(_) => return Err(Reply::bad_request(format!("requests[{i}].headers must be an object."))),
        }
        let method = method.to_ascii_uppercase();
        let body = r.get("body").filter(|b| !b.is_null()).cloned();
        if matches!(method.as_str(), "POST" | "PATCH" | "PUT")
            && (body.is_none() || !headers.contains_key("content-type"))
        {
            return Err(Reply::bad_request(format!(
                "Write request id : {id} does not contain Content-Type header or body."
            )));
        }
        let depends_on = match r.get("dependsOn") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(d)) => {
                let mut out = Vec::new();
                for dep in d {
                    match dep.as_str() {
                        Some(dep) if items.iter().any(|it| it.id == dep) => out.push(dep.to_owned()),
                        _ => {
                            return Err(Reply::bad_request(format!(
                                "requests[{i}].dependsOn must name earlier requests of the batch."
                            )));
                        }
                    }
                }
                out
            }
            Some(_) => return Err(Reply::bad_request(format!("requests[{i}].dependsOn must be a list."))),
        };
        items.push(Item {
            id: id.to_owned(),
            method,
            url: url.to_owned(),
            headers,
            body,
            depends_on,
        });
    }
    Ok(items)
}

/// Splits an item's relative URL into a decoded path and query pairs.
fn split_url(url: &str) -> (String, Vec<(String, String)>) {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let path = path
        .trim_start_matches('/')
        .split('/')
        .map(|seg| {
            percent_encoding::percent_decode_str(seg)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect::<Vec<_>>()
        .join("/");
    let query = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    (path, query)
}

/// Answers a `$batch` envelope (`call` is the envelope).
pub(crate) fn handle(shared: &Shared, call: &Call) -> Reply {
    let ids = RequestIds::new(call.client_request_id.as_deref());
    let (reply, tenant) = run(shared, call);
    let reply = reply.finish(&ids);
    shared.log.record(Entry {
        kind: RequestKind::Batch,
        method: &call.method,
        path: &call.raw,
        status: reply.status.as_u16(),
        tenant,
        in_batch: false,
    });
    reply
}

fn run(shared: &Shared, call: &Call) -> (Reply, Option<String>) {
    let tenant = match shared.tokens.check(call.authorization.as_deref()) {
        Ok(t) => t,
        Err(refusal) => return (refusal.reply(), None),
    };
    if call.method != "POST" {
        return (
            Reply::error(StatusCode::METHOD_NOT_ALLOWED, "BadRequest", "$batch only takes POST."),
            Some(tenant),
        );
    }
    let items = match parse_items(&call.body) {
        Ok(items) => items,
        Err(r) => return (r, Some(tenant)),
    };
    let mut statuses: HashMap<String, u16> = HashMap::new();
    let mut responses = Vec::with_capacity(items.len());
    for item in items {
        let (path, query) = split_url(&item.url);
        let sub = Call {
            method: item.method.clone(),
            path,
            query,
            raw: format!("/beta/{}", item.url.trim_start_matches('/')),
            body: match item.body {
                None => Body::None,
                Some(b) => match item.headers.get("content-type") {
                    Some(ct) if ct.to_ascii_lowercase().contains("json") => Body::Json(b),
                    Some(_) => Body::NotJson,
                    None => Body::Json(b),
                },
            },
            authorization: call.authorization.clone(),
            client_request_id: item.headers.get("client-request-id").cloned(),
            link_base: call.link_base.clone(),
            in_batch: true,
        };
        let failed_dep = item
            .depends_on
            .iter()
            .find(|d| statuses.get(*d).is_none_or(|s| *s >= 400));
        let reply = match failed_dep {
            Some(dep) => {
                let r = Reply::error(
                    StatusCode::FAILED_DEPENDENCY,
                    "FailedDependency",
                    format!("The request it depends on ({dep}) failed."),
                )
                .finish(&RequestIds::new(sub.client_request_id.as_deref()));
                shared.log.record(Entry {
                    kind: RequestKind::Graph,
                    method: &sub.method,
                    path: &sub.raw,
                    status: r.status.as_u16(),
                    tenant: Some(tenant.clone()),
                    in_batch: true,
                });
                r
            }
            None => graph::handle(shared, &sub),
        };
        statuses.insert(item.id.clone(), reply.status.as_u16());
        let mut resp = json!({
            "id": item.id,
            "status": reply.status.as_u16(),
            "headers": reply.batch_headers(),
        });
        if let (Some(body), Value::Object(m)) = (reply.body, &mut resp) {
            m.insert("body".to_owned(), body);
        }
        responses.push(resp);
    }
    (
        Reply::json(StatusCode::OK, json!({"responses": responses})),
        Some(tenant),
    )
}
