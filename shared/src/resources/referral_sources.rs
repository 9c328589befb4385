use super::Resource;
use crate::schema::{Field, Ty};
use crate::store::Lookup;

pub static RESOURCE: Resource = Resource {
    path: "referral-sources",
    object: "referralSource",
    label: "referral source",
    prefix: "ref",
    fields: &[
        Field::new(
            "name",
            Ty::Str,
            "Unique per organization and mode, ignoring case.",
        )
        .required(),
        Field::new(
            "metadata",
            Ty::Metadata,
            "Up to 50 string keys and values for your own use.",
        ),
    ],
    unique: &["name"],
    search_fields: &["name"],
    description: "Where patients hear of the business (Google, a GP, word of mouth…).",
    lookups: &[Lookup::eq("name")],
    ..Resource::CRUD
};
