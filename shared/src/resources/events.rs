//! Events: what happened, kept 30 days, the body of every webhook; and
//! `POST /v1/events/{id}/redeliver`.

use super::{engine, Action, BoxFuture, Ctx, Reply, Resource, Shape};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::schema::{Field, Ty};
use crate::store::Lookup;
use crate::webhooks::{deliver, fanout, ENDPOINTS_KIND, EVENT_TTL_MS};
use serde_json::{json, Map, Value};

/// The fields every event has (events are never updated: no `updatedAt`
/// or `version`).
static EVENT_COMMON: &[Field] = &[
    Field::new("id", Ty::Str, "Unique identifier (`evt_…`).").read_only(),
    Field::new("object", Ty::Str, "Always `event`.").read_only(),
    Field::new(
        "livemode",
        Ty::Bool,
        "True in live mode, false in test mode.",
    )
    .read_only(),
    Field::new("createdAt", Ty::Timestamp, "When it happened.").read_only(),
];

static ENDPOINT_ID: Ty = Ty::Ref(ENDPOINTS_KIND);

static REDELIVERY: &[Field] = &[
    Field::new("object", Ty::Str, "Always `redelivery`.").read_only(),
    Field::new("eventId", Ty::Str, "The event sent again.").read_only(),
    Field::new(
        "endpointIds",
        Ty::Array(&ENDPOINT_ID, 1000),
        "The endpoints it was queued for.",
    )
    .read_only(),
];

/// The queue, or a 500 where no delivery runs.
pub(super) fn need_queue<'a>(ctx: &Ctx<'a>) -> ApiResult<&'a dyn crate::queue::Queue> {
    ctx.queue.ok_or_else(|| {
        ApiError::new(
            ErrorKind::Unknown,
            "Webhook delivery is not running in this deployment.",
        )
    })
}

/// Send an event again to one endpoint, or to every endpoint subscribed now.
fn redeliver<'a>(
    ctx: &'a Ctx<'a>,
    id: &'a str,
    body: Map<String, Value>,
) -> BoxFuture<'a, ApiResult<Reply>> {
    Box::pin(async move {
        let event = engine::get(ctx, &RESOURCE, id).await?;
        let queue = need_queue(ctx)?;
        let key = ctx.tenant.key();
        let endpoints = match body.get("endpointId").and_then(Value::as_str) {
            None => {
                let t = event["type"].as_str().unwrap_or_default();
                fanout::subscribers(ctx.store, &key, t, None).await?
            }
            Some(e) => {
                if ctx.store.get(&key, ENDPOINTS_KIND, e).await?.is_none() {
                    return Err(ApiError::field(
                        "endpointId",
                        format!("no webhook endpoint with id `{e}` in this organization and mode"),
                    ));
                }
                vec![e.to_string()]
            }
        };
        let msgs = endpoints
            .iter()
            .map(|e| deliver::message(&key, id, e))
            .collect();
        queue.send(msgs, std::time::Duration::ZERO).await?;
        Ok(Reply::new(
            202,
            json!({"object": "redelivery", "eventId": id, "endpointIds": endpoints}),
        ))
    })
}

pub static RESOURCE: Resource = Resource {
    path: "events",
    object: "event",
    label: "event",
    prefix: "evt",
    common: EVENT_COMMON,
    fields: &[
        Field::new("type", Ty::Str, "The event type, e.g. `patient.created`.").read_only(),
        Field::new("organizationId", Ty::Str, "The organization.").read_only(),
        Field::new(
            "data",
            Ty::Json,
            "The object the event is about (sensitive fields removed); an `updated` event's carries `previousAttributes`.",
        )
        .read_only(),
    ],
    description: "Something that happened: the body of every webhook. Kept 30 days.",
    read_only: true,
    lookups: &[Lookup::eq("type"), Lookup::eq("data.id")],
    by_updated: false,
    ttl_ms: Some(EVENT_TTL_MS),
    actions: &[Action {
        name: "redeliver",
        summary: "Send the event again: to one endpoint (`endpointId`), or to every endpoint subscribed to its type now.",
        body: &[Field::new(
            "endpointId",
            Ty::Ref(ENDPOINTS_KIND),
            "Only this endpoint (it need not be subscribed).",
        )],
        status: 202,
        response: Shape::Object {
            name: "Redelivery",
            fields: REDELIVERY,
        },
        conflicts: false,
        run: redeliver,
    }],
    ..Resource::CRUD
};
