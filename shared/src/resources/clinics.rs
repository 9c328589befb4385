use super::Resource;
use crate::schema::{Field, Ty, ADDRESS};
use crate::store::Lookup;

pub static RESOURCE: Resource = Resource {
    path: "clinics",
    object: "clinic",
    label: "clinic",
    prefix: "cli",
    fields: &[
        Field::new("name", Ty::Str, "The site's name.").required(),
        Field::new("address", Ty::Object(ADDRESS), "Postal address."),
        Field::new(
            "timeZone",
            Ty::TimeZone,
            "IANA time zone, e.g. `Europe/London`.",
        ),
        Field::new("phone", Ty::Phone, "Phone number."),
        Field::new("email", Ty::Email, "Email address."),
        Field::new(
            "metadata",
            Ty::Metadata,
            "Up to 50 string keys and values for your own use.",
        ),
    ],
    search_fields: &["name", "address", "email"],
    description: "A site of the organization where patients are seen.",
    lookups: &[Lookup::eq("name")],
    ..Resource::CRUD
};
