use super::Resource;
use crate::schema::{Field, Ty};
use crate::store::Lookup;

pub static RESOURCE: Resource = Resource {
    path: "patient-statuses",
    object: "patientStatus",
    label: "patient status",
    prefix: "pst",
    fields: &[
        Field::new(
            "name",
            Ty::Str,
            "Unique per organization and mode, ignoring case.",
        )
        .required(),
        Field::new(
            "order",
            Ty::Int {
                min: 0,
                max: 1_000_000,
            },
            "Position in pipelines and menus.",
        ),
        Field::new(
            "metadata",
            Ty::Metadata,
            "Up to 50 string keys and values for your own use.",
        ),
    ],
    unique: &["name"],
    search_fields: &["name"],
    description: "A stage of the patient pipeline (New enquiry, Active, Lapsed…).",
    lookups: &[Lookup::eq("name")],
    ..Resource::CRUD
};
