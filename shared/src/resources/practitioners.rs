use super::Resource;
use crate::schema::{Field, Ty};
use crate::store::Lookup;

static CLINIC_ID: Ty = Ty::Ref("clinics");

pub static RESOURCE: Resource = Resource {
    path: "practitioners",
    object: "practitioner",
    label: "practitioner",
    prefix: "prc",
    fields: &[
        Field::new("fullName", Ty::Str, "The practitioner's full name.").required(),
        Field::new("email", Ty::Email, "Email address."),
        Field::new(
            "clinicIds",
            Ty::Array(&CLINIC_ID, 100),
            "The clinics where they practise.",
        ),
        Field::new("role", Ty::Str, "Role, e.g. `audiologist`."),
        Field::new(
            "metadata",
            Ty::Metadata,
            "Up to 50 string keys and values for your own use.",
        ),
    ],
    search_fields: &["fullName", "email", "role"],
    description: "A member of staff who sees patients.",
    lookups: &[Lookup::eq("email")],
    ..Resource::CRUD
};
