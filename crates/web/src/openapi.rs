//! The OpenAPI 3.1 document of the JSON API, built with utoipa from the
//! route table ([`crate::api::ROUTES`]): paths, path and list parameters
//! (enumerations taken from the catalogs), the start request body, and the
//! shapes of answers and errors (CONTRACT.md's). The hub tests hold real
//! answers against these schemas.

use serde_json::Value;
use tenantatlas_domain::access::Role;
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::lifecycle::{Outcome, RunStatus, StatusBucket, StatusFilter};
use tenantatlas_domain::problem::ProblemClass;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItemBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ComponentsBuilder, KnownFormat, ObjectBuilder, Ref, SchemaFormat, SchemaType,
    Type,
};
use utoipa::openapi::{ContentBuilder, InfoBuilder, OpenApiBuilder, PathsBuilder, Required, ResponseBuilder};

use crate::api::{ApiRoute, LIST_PARAMS, Shape};

/// Text people type (`names::printable_text`) of at most `$max`
/// characters: something besides spaces, and no control (Cc) or invisible
/// format (Cf) character. The escapes read the same in Python's and
/// Rust's regular expressions.
macro_rules! printable_pattern {
    ($max:literal) => {
        concat!(
            "^(?=.*\\S)[^",
            "\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891",
            "\\u08e2\\u180e\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff",
            "\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U0001343f\\U0001bca0-\\U0001bca3",
            "\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f",
            "]{1,",
            $max,
            "}$"
        )
    };
}

/// A token's name.
const PRINTABLE_PATTERN: &str = printable_pattern!(100);
/// A reason for a triage action.
const REASON_PATTERN: &str = printable_pattern!(500);

/// What a page's `next_cursor` looks like (`Cursor::encode`).
const CURSOR_PATTERN: &str = "^[0-9]{1,18}_[0-9a-f]{32}$";

fn typed(t: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(t)
}

fn or_null(t: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type([t, Type::Null].into_iter().collect::<SchemaType>())
}

fn uuid(nullable: bool) -> ObjectBuilder {
    let b = if nullable {
        or_null(Type::String)
    } else {
        typed(Type::String)
    };
    b.format(Some(SchemaFormat::Custom("uuid".into())))
}

fn time(nullable: bool) -> ObjectBuilder {
    let b = if nullable {
        or_null(Type::String)
    } else {
        typed(Type::String)
    };
    b.format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
}

/// A string that is one of `names` (or null when `nullable`).
fn one_of(names: impl IntoIterator<Item = &'static str>, nullable: bool) -> ObjectBuilder {
    let mut values: Vec<Value> = names.into_iter().map(Value::from).collect();
    if nullable {
        values.push(Value::Null);
        or_null(Type::String).enum_values(Some(values))
    } else {
        typed(Type::String).enum_values(Some(values))
    }
}

fn array_of(items: impl Into<utoipa::openapi::schema::ArrayItems>) -> ArrayBuilder {
    ArrayBuilder::new().items(items)
}

fn op_types() -> impl Iterator<Item = &'static str> {
    OperationType::ALL.iter().map(|t| t.as_str())
}

/// An object with every property required and no others.
fn closed(props: Vec<(&str, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) -> ObjectBuilder {
    let mut b = typed(Type::Object).additional_properties(Some(
        AdditionalProperties::<utoipa::openapi::schema::Schema>::FreeForm(false),
    ));
    for (name, schema) in props {
        b = b.property(name, schema).required(name);
    }
    b
}

/// The properties of a run (`RunView`).
fn run_properties() -> Vec<(&'static str, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)> {
    vec![
        ("id", uuid(false).into()),
        ("workspace_id", uuid(true).into()),
        ("tenant_id", uuid(true).into()),
        ("type", one_of(op_types(), false).into()),
        ("label", typed(Type::String).into()),
        (
            "status",
            one_of(RunStatus::ALL.iter().map(|s| s.as_str()), false).into(),
        ),
        ("outcome", one_of(Outcome::ALL.iter().map(|o| o.as_str()), true).into()),
        (
            "bucket",
            one_of(StatusBucket::ALL.iter().map(|b| b.as_str()), false).into(),
        ),
        (
            "problem_class",
            one_of(ProblemClass::ALL.iter().map(|p| p.as_str()), false).into(),
        ),
        ("initiator", uuid(true).into()),
        (
            "progress",
            typed(Type::Object)
                .description(Some("Counted (processed / total), phased, or indeterminate."))
                .into(),
        ),
        (
            "summary_counts",
            typed(Type::Object)
                .description(Some("Summary counts by key (closed set)."))
                .additional_properties(Some(typed(Type::Integer)))
                .into(),
        ),
        ("failures", array_of(typed(Type::Object)).into()),
        ("reason_code", or_null(Type::String).into()),
        ("created_at", time(false).into()),
        ("started_at", time(true).into()),
        ("completed_at", time(true).into()),
        ("parent_id", uuid(true).into()),
        ("attempt", typed(Type::Integer).minimum(Some(0)).into()),
        ("params", typed(Type::Object).into()),
        (
            "reconciliation",
            or_null(Type::Object)
                .description(Some("Lineage when the reconciler completed the run."))
                .into(),
        ),
        ("view_url", typed(Type::String).into()),
    ]
}

fn components() -> utoipa::openapi::Components {
    let run = closed(run_properties());
    let mut detail_props = run_properties();
    detail_props.push((
        "decision",
        closed(vec![
            (
                "problem_class",
                one_of(ProblemClass::ALL.iter().map(|p| p.as_str()), false).into(),
            ),
            ("headline", typed(Type::String).into()),
            ("next_step", typed(Type::String).into()),
            (
                "actions",
                array_of(closed(vec![
                    ("action", one_of(["cancel", "retry", "reconcile"], false).into()),
                    ("label", typed(Type::String).into()),
                    ("method", one_of(["POST"], false).into()),
                    ("url", typed(Type::String).into()),
                ]))
                .into(),
            ),
        ])
        .into(),
    ));
    detail_props.push((
        "timeline",
        array_of(closed(vec![
            ("kind", typed(Type::String).into()),
            ("at", time(false).into()),
            ("attempt", or_null(Type::Integer).into()),
            ("actor_id", uuid(true).into()),
            ("detail", ObjectBuilder::new().schema_type(SchemaType::AnyValue).into()),
        ]))
        .into(),
    ));
    detail_props.push((
        "related",
        array_of(closed(vec![
            ("rel", typed(Type::String).into()),
            ("href", typed(Type::String).into()),
        ]))
        .into(),
    ));
    let token = closed(vec![
        ("id", uuid(false).into()),
        ("name", typed(Type::String).into()),
        ("user_id", uuid(false).into()),
        ("user", typed(Type::String).into()),
        ("created_at", time(false).into()),
        ("expires_at", time(true).into()),
        ("last_used_at", time(true).into()),
    ]);
    let member = closed(vec![
        ("workspace_id", uuid(false).into()),
        ("user_id", uuid(false).into()),
        ("email", typed(Type::String).into()),
        ("role", one_of(Role::ALL.iter().map(|r| r.as_str()), false).into()),
        (
            "tenants",
            or_null(Type::Array)
                .description(Some("The tenants they are entitled to; null: every tenant."))
                .into(),
        ),
    ]);
    let schedule = closed(vec![
        ("id", uuid(false).into()),
        ("name", typed(Type::String).into()),
        ("cron", typed(Type::String).into()),
        ("type", one_of(op_types(), false).into()),
        ("tenant_id", uuid(true).into()),
        ("params", typed(Type::Object).into()),
        ("enabled", typed(Type::Boolean).into()),
        ("next_fire_at", time(false).into()),
        ("last_fired_at", time(true).into()),
        ("last_run_id", uuid(true).into()),
    ]);
    let user = closed(vec![
        ("id", uuid(false).into()),
        ("email", typed(Type::String).into()),
        ("platform_operator", typed(Type::Boolean).into()),
        ("disabled_at", time(true).into()),
        ("created_at", time(false).into()),
    ]);
    ComponentsBuilder::new()
        .schema(
            "Error",
            closed(vec![(
                "error",
                closed(vec![
                    ("code", typed(Type::String).into()),
                    ("message", typed(Type::String).into()),
                    (
                        "field",
                        or_null(Type::String)
                            .description(Some("The field (or parameter) the error is about."))
                            .into(),
                    ),
                ])
                .into(),
            )]),
        )
        .schema("Run", run)
        .schema("RunDetail", closed(detail_props))
        .schema(
            "RunPage",
            closed(vec![
                ("runs", array_of(Ref::from_schema_name("Run")).into()),
                (
                    "next_cursor",
                    or_null(Type::String)
                        .description(Some("Pass as `cursor` for the next page; null on the last."))
                        .into(),
                ),
            ]),
        )
        .schema(
            "StartRequest",
            closed(vec![
                ("type", one_of(op_types(), false).into()),
                (
                    "params",
                    typed(Type::Object)
                        .description(Some("The operation type's parameters (optional; validated per type)."))
                        .into(),
                ),
            ]),
        )
        .schema(
            "Started",
            closed(vec![
                ("run", Ref::from_schema_name("Run").into()),
                ("joined", typed(Type::Boolean).into()),
                (
                    "toast",
                    closed(vec![
                        ("kind", one_of(["queued", "already_queued"], false).into()),
                        ("message", typed(Type::String).into()),
                        ("view_url", typed(Type::String).into()),
                    ])
                    .into(),
                ),
            ]),
        )
        .schema(
            "Notifications",
            closed(vec![
                (
                    "notifications",
                    array_of(closed(vec![
                        ("id", uuid(false).into()),
                        ("run_id", uuid(false).into()),
                        ("title", typed(Type::String).into()),
                        ("body", typed(Type::String).into()),
                        ("view_url", typed(Type::String).into()),
                        ("read", typed(Type::Boolean).into()),
                        ("created_at", time(false).into()),
                    ]))
                    .into(),
                ),
                ("unread", typed(Type::Integer).minimum(Some(0)).into()),
            ]),
        )
        .schema(
            "Connection",
            closed(vec![
                ("tenant_id", uuid(false).into()),
                ("provider", one_of(["directory", "graph"], true).into()),
                (
                    "last_check",
                    ObjectBuilder::new()
                        .schema_type([Type::Object, Type::Null].into_iter().collect::<SchemaType>())
                        .additional_properties(Some(AdditionalProperties::<utoipa::openapi::schema::Schema>::FreeForm(
                            false,
                        )))
                        .property("run", Ref::from_schema_name("Run"))
                        .required("run")
                        .property(
                            "report",
                            ObjectBuilder::new()
                                .schema_type([Type::Object, Type::Null].into_iter().collect::<SchemaType>())
                                .additional_properties(Some(
                                    AdditionalProperties::<utoipa::openapi::schema::Schema>::FreeForm(false),
                                ))
                                .property("ok", typed(Type::Boolean))
                                .required("ok")
                                .property("provider", typed(Type::String))
                                .required("provider")
                                .property(
                                    "checks",
                                    array_of(closed(vec![
                                        ("name", typed(Type::String).into()),
                                        ("ok", typed(Type::Boolean).into()),
                                        ("reason_code", or_null(Type::String).into()),
                                        ("message", typed(Type::String).into()),
                                    ])),
                                )
                                .required("checks")
                                .property("missing_permissions", array_of(typed(Type::String)))
                                .required("missing_permissions"),
                        )
                        .required("report")
                        .into(),
                ),
            ]),
        )
        .schema(
            "Read",
            closed(vec![("id", uuid(false).into()), ("read", typed(Type::Boolean).into())]),
        )
        .schema(
            "ReconcileRequest",
            closed(vec![(
                "reason",
                typed(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(500))
                    .pattern(Some(REASON_PATTERN))
                    .description(Some("Why the run is ended; kept on its failure and in the audit log."))
                    .into(),
            )]),
        )
        .schema("Token", token)
        .schema(
            "Tokens",
            closed(vec![("tokens", array_of(Ref::from_schema_name("Token")).into())]),
        )
        .schema(
            "TokenRequest",
            typed(Type::Object)
                .additional_properties(Some(AdditionalProperties::<utoipa::openapi::schema::Schema>::FreeForm(
                    false,
                )))
                .property(
                    "name",
                    typed(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(100))
                        .pattern(Some(PRINTABLE_PATTERN)),
                )
                .required("name")
                .property(
                    "expires_in_days",
                    or_null(Type::Integer)
                        .minimum(Some(1))
                        .maximum(Some(732))
                        .description(Some("Days until it stops working; omitted or null: until revoked.")),
                ),
        )
        .schema(
            "IssuedToken",
            closed(vec![
                ("id", uuid(false).into()),
                (
                    "token",
                    typed(Type::String)
                        .description(Some(
                            "The secret, for `Authorization: Bearer`; shown only in this answer.",
                        ))
                        .into(),
                ),
                ("name", typed(Type::String).into()),
                ("expires_at", time(true).into()),
            ]),
        )
        .schema("Member", member)
        .schema(
            "Members",
            closed(vec![("members", array_of(Ref::from_schema_name("Member")).into())]),
        )
        .schema(
            "RoleRequest",
            closed(vec![(
                "role",
                one_of(Role::ALL.iter().map(|r| r.as_str()), false).into(),
            )]),
        )
        .schema("Schedule", schedule)
        .schema(
            "Schedules",
            closed(vec![("schedules", array_of(Ref::from_schema_name("Schedule")).into())]),
        )
        .schema("User", user)
        .schema(
            "Users",
            closed(vec![("users", array_of(Ref::from_schema_name("User")).into())]),
        )
        .build()
}

/// The schema of list parameter `name`.
fn list_param_schema(name: &str) -> ObjectBuilder {
    match name {
        "workspace" | "tenant" => uuid(false),
        "type" => one_of(op_types(), false),
        "status" => one_of(StatusFilter::ALL.iter().map(|b| b.as_str()), false),
        "problem" => one_of(ProblemClass::ALL.iter().map(|p| p.as_str()), false),
        "since" | "until" => time(false),
        "limit" => typed(Type::Integer).minimum(Some(1)).maximum(Some(500)),
        "cursor" => typed(Type::String).pattern(Some(CURSOR_PATTERN)),
        "clear" => typed(Type::String).min_length(Some(1)),
        _ => typed(Type::String),
    }
}

fn json_response(description: &str, schema: &str) -> utoipa::openapi::Response {
    let b = ResponseBuilder::new().description(description);
    if schema.is_empty() {
        return b.build();
    }
    b.content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(schema)))
            .build(),
    )
    .build()
}

/// The document for `routes`.
pub(crate) fn document(routes: &[ApiRoute]) -> Value {
    let mut paths = PathsBuilder::new();
    for r in routes {
        let (answer, request) = match r.shape {
            Shape::Plain(s) => (s, None),
            Shape::List => ("RunPage", None),
            Shape::Start => ("Started", Some("StartRequest")),
            Shape::Restart => ("Started", None),
            Shape::Body(req, s) | Shape::Create(req, s) => (s, Some(req)),
        };
        let ok = if matches!(r.shape, Shape::Create(..)) {
            "201"
        } else {
            "200"
        };
        let mut op = OperationBuilder::new()
            .summary(Some(r.summary))
            .response(ok, json_response("OK", answer))
            .response("401", json_response("No or invalid credentials", "Error"))
            .response("404", json_response("Not found for this caller", "Error"));
        if r.method == "post" {
            op = op
                .response("403", json_response("Capability missing", "Error"))
                .response("422", json_response("Bad input, naming the field", "Error"));
        } else if r.shape == Shape::List {
            op = op.response("422", json_response("Bad filter, naming the parameter", "Error"));
        }
        if matches!(r.shape, Shape::Start | Shape::Restart) {
            op = op.response("202", json_response("Queued: a new run", "Started"));
        }
        if r.shape == Shape::Restart {
            op = op.response("409", json_response("A system run: it starts on its schedule", "Error"));
        }
        if r.path.contains("/members/") || r.path.ends_with("/disable") {
            op = op.response(
                "409",
                json_response(
                    "Refused: it would leave a workspace without an owner, or disable yourself",
                    "Error",
                ),
            );
        }
        if let Some(req) = request {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(Ref::from_schema_name(req))).build(),
                    )
                    .build(),
            ));
        }
        if r.path.contains('{') {
            op = op.response("422", json_response("A path id that is not a UUID, naming it", "Error"));
        }
        if request.is_some() {
            op = op.response("413", json_response("The body is larger than 2 MB", "Error"));
        }
        for seg in r.path.split('/').filter(|s| s.starts_with('{')) {
            let name = seg.trim_matches(|c| c == '{' || c == '}');
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(uuid(false)))
                    .build(),
            );
        }
        if r.shape == Shape::List {
            for (name, what) in LIST_PARAMS {
                op = op.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Query)
                        .required(Required::False)
                        .description(Some(what))
                        .schema(Some(list_param_schema(name)))
                        .build(),
                );
            }
        }
        let m = if r.method == "post" {
            HttpMethod::Post
        } else {
            HttpMethod::Get
        };
        paths = paths.path(r.path, PathItemBuilder::new().operation(m, op.build()).build());
    }
    let doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("TenantAtlas")
                .version(env!("CARGO_PKG_VERSION"))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components()))
        .build();
    serde_json::to_value(doc).unwrap_or(Value::Null)
}
