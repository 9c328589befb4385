use super::{Change, Ctx, Group, GroupDefault, Publishable, Resource, Rules};
use crate::error::ApiResult;
use crate::schema::{Field, Ty, ADDRESS};
use crate::store::Lookup;
use async_trait::async_trait;
use serde_json::Value;

static TRACKING: &[Field] = &[
    Field::new("source", Ty::Str, "utm_source."),
    Field::new("medium", Ty::Str, "utm_medium."),
    Field::new("campaign", Ty::Str, "utm_campaign."),
    Field::new("term", Ty::Str, "utm_term."),
    Field::new("content", Ty::Str, "utm_content."),
    Field::new("landingPage", Ty::Str, "The page the patient arrived on."),
    Field::new("gclid", Ty::Str, "Google click id."),
    Field::new("fbclid", Ty::Str, "Facebook click id."),
    Field::new("msclkid", Ty::Str, "Microsoft click id."),
];

static EMERGENCY_CONTACT: Ty = Ty::Object(&[
    Field::new("name", Ty::Str, "Contact's name.").required(),
    Field::new("phone", Ty::Phone, "Contact's phone.").required(),
    Field::new("email", Ty::Email, "Contact's email."),
]);

/// The referral source of a patient a publishable key creates without one
/// (a web form, the booking widget): docs/widget.md.
pub const WEB_REFERRAL: &str = "Website";

pub const MEMBERSHIP_STATUSES: &[&str] = &[
    "introOffer",
    "activePackage",
    "suspendedMembership",
    "inactive",
];

struct PatientRules;

#[async_trait]
impl Rules for PatientRules {
    async fn check(&self, _ctx: &Ctx<'_>, change: &mut Change<'_>) -> ApiResult<()> {
        // Derived from the patient's purchases; with none, `inactive`.
        change
            .new
            .entry("membershipStatus")
            .or_insert_with(|| Value::String("inactive".into()));
        Ok(())
    }
}

pub static RESOURCE: Resource = Resource {
    path: "patients",
    object: "patient",
    label: "patient",
    prefix: "pat",
    fields: &[
        Field::new("title", Ty::Str, "Mr, Mrs, Dr…"),
        Field::new("fullName", Ty::Str, "The patient's full name.").required(),
        Field::new("address", Ty::Object(ADDRESS), "Postal address."),
        Field::new(
            "referralId",
            Ty::Ref("referral-sources"),
            "Referral source (or give `referralName`). A publishable key may leave both out: the referral source named `Website`.",
        ),
        Field::new(
            "primaryClinicId",
            Ty::Ref("clinics"),
            "Primary clinic (or give `primaryClinicName`).",
        ),
        Field::new(
            "statusId",
            Ty::Ref("patient-statuses"),
            "Pipeline status (or give `statusName`). A publishable key may leave both out: the status of the lowest `order`.",
        ),
        Field::new("primaryPhoneNumber", Ty::Phone, "E.164 or national digits.").required(),
        Field::new(
            "secondaryPhoneNumber",
            Ty::Phone,
            "E.164 or national digits.",
        ),
        Field::new("emailAddress", Ty::Email, "Email address."),
        Field::new("dob", Ty::Date, "Date of birth, YYYY-MM-DD."),
        Field::new("age", Ty::Int { min: 0, max: 150 }, "Age in years."),
        Field::new("gender", Ty::Str, "Gender, as the patient describes it."),
        Field::new("notes", Ty::Text, "Free-text notes."),
        Field::new(
            "tracking",
            Ty::Object(TRACKING),
            "Marketing attribution (may be empty).",
        )
        .required(),
        Field::new(
            "emergencyContacts",
            Ty::Array(&EMERGENCY_CONTACT, 10),
            "People to call in an emergency.",
        ),
        Field::new("barcodeId", Ty::Str, "Membership card barcode."),
        Field::new("joinDate", Ty::Date, "When the patient joined, YYYY-MM-DD."),
        Field::new("customProperties", Ty::Json, "Free-form properties."),
        Field::new(
            "medicalNumber",
            Ty::Str,
            "National medical number. Sensitive: never sent in webhooks.",
        )
        .sensitive(),
        Field::new(
            "membershipStatus",
            Ty::Enum(MEMBERSHIP_STATUSES),
            "Derived from the patient's purchases.",
        )
        .read_only(),
        Field::new(
            "metadata",
            Ty::Metadata,
            "Up to 50 string keys and values for your own use.",
        ),
    ],
    groups: &[
        Group {
            id_field: "referralId",
            name_field: "referralName",
            target: "referral-sources",
            target_name_field: "name",
            publishable_default: Some(GroupDefault::Named(WEB_REFERRAL)),
        },
        Group {
            id_field: "primaryClinicId",
            name_field: "primaryClinicName",
            target: "clinics",
            target_name_field: "name",
            publishable_default: None,
        },
        Group {
            id_field: "statusId",
            name_field: "statusName",
            target: "patient-statuses",
            target_name_field: "name",
            publishable_default: Some(GroupDefault::LowestOrder),
        },
    ],
    publishable: Publishable {
        read: false,
        create: true,
    },
    rules: &PatientRules,
    events: &["statusChanged"],
    lookups: &[
        Lookup::eq("emailAddress"),
        Lookup::eq("primaryClinicId"),
        Lookup::eq("primaryPhoneNumber"),
        Lookup::eq("barcodeId"),
    ],
    search_fields: &["fullName", "emailAddress", "notes", "address"],
    description: "A person the business cares for.",
    ..Resource::CRUD
};
