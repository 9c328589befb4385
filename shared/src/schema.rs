//! Resource schemas: one static description per resource drives body
//! validation, query coercion, sensitive-field stripping and OpenAPI.

use serde_json::{json, Value};

#[derive(Debug)]
pub enum Ty {
    /// Short single-line string.
    Str,
    /// Free text (notes, descriptions).
    Text,
    /// A long text, at most this many bytes (an email's HTML body).
    LongText(usize),
    /// A decimal number (computed averages), within bounds.
    Number {
        min: f64,
        max: f64,
    },
    Int {
        min: i64,
        max: i64,
    },
    Bool,
    /// RFC 3339 or Unix ms in; RFC 3339 UTC with milliseconds out.
    Timestamp,
    /// `YYYY-MM-DD`.
    Date,
    Email,
    Phone,
    /// ISO 3166-1 alpha-3.
    Country,
    /// IANA time zone name.
    TimeZone,
    /// An active ISO 4217 currency code (`GBP`).
    Currency,
    /// `HH:MM`, a time of day on a 24-hour clock (`24:00` ends a day).
    LocalTime,
    /// An absolute `http` or `https` URL.
    Url,
    /// The id of an object of the resource with this path, same tenant.
    Ref(&'static str),
    Enum(&'static [&'static str]),
    Object(&'static [Field]),
    Array(&'static Ty, usize),
    /// Up to 50 string keys → string values (Stripe's metadata).
    Metadata,
    /// A free-form JSON object (customProperties, customData).
    Json,
}

#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    /// Set by the server; refused in request bodies.
    pub read_only: bool,
    /// Never leaves in events or logs.
    pub sensitive: bool,
    /// A reference (`Ty::Ref`) whose target cannot be deleted while an
    /// object refers to it (409 naming how many do).
    pub restrict: bool,
    pub doc: &'static str,
}

impl Field {
    pub const fn new(name: &'static str, ty: Ty, doc: &'static str) -> Field {
        Field {
            name,
            ty,
            required: false,
            read_only: false,
            sensitive: false,
            restrict: false,
            doc,
        }
    }
    pub const fn restrict(mut self) -> Field {
        self.restrict = true;
        self
    }
    pub const fn required(mut self) -> Field {
        self.required = true;
        self
    }
    pub const fn read_only(mut self) -> Field {
        self.read_only = true;
        self
    }
    pub const fn sensitive(mut self) -> Field {
        self.sensitive = true;
        self
    }
}

/// Fields every object has.
pub static COMMON: &[Field] = &[
    Field::new(
        "id",
        Ty::Str,
        "Unique identifier: a type prefix and a time-ordered part.",
    )
    .read_only(),
    Field::new("object", Ty::Str, "The object's type.").read_only(),
    Field::new(
        "livemode",
        Ty::Bool,
        "True in live mode, false in test mode.",
    )
    .read_only(),
    Field::new("createdAt", Ty::Timestamp, "When the object was created.").read_only(),
    Field::new(
        "updatedAt",
        Ty::Timestamp,
        "When the object was last changed.",
    )
    .read_only(),
    Field::new(
        "version",
        Ty::Int {
            min: 1,
            max: i64::MAX,
        },
        "Incremented on every change; the ETag.",
    )
    .read_only(),
];

pub static ADDRESS: &[Field] = &[
    Field::new("line1", Ty::Str, "First line."),
    Field::new("line2", Ty::Str, "Second line."),
    Field::new("city", Ty::Str, "City or town."),
    Field::new("region", Ty::Str, "County, state or region."),
    Field::new("postcode", Ty::Str, "Postal code."),
    Field::new(
        "country",
        Ty::Country,
        "ISO 3166-1 alpha-3 country code, e.g. `GBR`.",
    ),
];

/// What a query path resolves to.
#[derive(Debug, Clone, Copy)]
pub enum PathTy<'a> {
    Known(&'a Ty),
    /// Inside a Metadata or Json field: values compared as strings.
    Free,
}

/// Find the type at a dotted path (`address.city`, `metadata.plan`) among
/// `fields`. Arrays are looked through (`emergencyContacts.name`).
pub fn path_type<'a>(fields: &'a [Field], path: &[&str]) -> Option<PathTy<'a>> {
    let (first, rest) = path.split_first()?;
    let field = fields.iter().find(|f| f.name == *first)?;
    ty_at(&field.ty, rest)
}

fn ty_at<'a>(ty: &'a Ty, rest: &[&str]) -> Option<PathTy<'a>> {
    if rest.is_empty() {
        return Some(PathTy::Known(ty));
    }
    match ty {
        Ty::Object(fields) => path_type(fields, rest),
        Ty::Array(inner, _) => ty_at(inner, rest),
        Ty::Metadata | Ty::Json => Some(PathTy::Free),
        _ => None,
    }
}

// JSON Schema edits a resource's `schema_rules` make to its generated
// schemas (the OpenAPI document calls them).

/// The schema of a property of an input schema, without the `null` a merge
/// patch allows (for a resource's `schema_rules`).
pub fn property<'a>(schema: &'a mut Value, name: &str) -> &'a mut Value {
    let p = &mut schema["properties"][name];
    let nullable = p["anyOf"]
        .as_array()
        .is_some_and(|a| a.len() == 2 && a[1] == json!({"type": "null"}));
    if nullable {
        &mut p["anyOf"][0]
    } else {
        p
    }
}

/// A create schema's property limited to these values (the statuses a new
/// object may have).
pub fn only(schema: &mut Value, name: &str, values: &[&str]) {
    let p = property(schema, name);
    if p.get("enum").is_some() {
        p["enum"] = json!(values);
    }
}

/// Add conditions every body must also meet (`if`/`then` by a type field).
pub fn all_of(schema: &mut Value, conditions: Value) {
    let list = schema
        .as_object_mut()
        .expect("an object schema")
        .entry("allOf")
        .or_insert_with(|| json!([]));
    if let (Some(list), Value::Array(more)) = (list.as_array_mut(), conditions) {
        list.extend(more);
    }
}
