use super::Resource;
use crate::schema::{Field, Ty};
use crate::store::Lookup;

pub static RESOURCE: Resource = Resource {
    path: "webhook-deliveries",
    object: "webhookDelivery",
    label: "webhook delivery",
    prefix: "del",
    fields: &[
        Field::new("endpointId", Ty::Str, "The endpoint.").read_only(),
        Field::new("eventId", Ty::Str, "The event delivered.").read_only(),
        Field::new("eventType", Ty::Str, "Its type.").read_only(),
        Field::new(
            "attempt",
            Ty::Int { min: 1, max: 1000 },
            "1 for the first attempt.",
        )
        .read_only(),
        Field::new(
            "status",
            Ty::Enum(&["succeeded", "failed", "dead"]),
            "`dead`: the last attempt failed.",
        )
        .read_only(),
        Field::new(
            "responseStatus",
            Ty::Int { min: 0, max: 999 },
            "The receiver's HTTP status, if it answered.",
        )
        .read_only(),
        Field::new(
            "durationMs",
            Ty::Int {
                min: 0,
                max: i64::MAX,
            },
            "From connecting to the end of the response.",
        )
        .read_only(),
        Field::new("error", Ty::Str, "Why the attempt failed.").read_only(),
        Field::new(
            "nextRetryAt",
            Ty::Timestamp,
            "When the next attempt is due; absent after success or the last attempt.",
        )
        .read_only(),
    ],
    description: "One attempt to deliver an event to an endpoint (the `Hub-Delivery` id).",
    read_only: true,
    internal: true,
    lookups: &[Lookup::eq("endpointId"), Lookup::eq("eventId")],
    ..Resource::CRUD
};
