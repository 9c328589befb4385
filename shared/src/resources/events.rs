use super::Resource;
use crate::schema::{Field, Ty};

pub static RESOURCE: Resource = Resource {
    path: "events",
    object: "event",
    label: "event",
    prefix: "evt",
    fields: &[
        Field::new("type", Ty::Str, "The event type, e.g. `patient.created`.").read_only(),
        Field::new("organizationId", Ty::Str, "The organization.").read_only(),
        Field::new(
            "data",
            Ty::Json,
            "The object the event is about (sensitive fields removed).",
        )
        .read_only(),
    ],
    description: "Something that happened: the body of every webhook. Kept 30 days.",
    read_only: true,
    actions: &["redeliver"],
    ..Resource::CRUD
};
