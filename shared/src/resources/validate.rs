//! Body validation: parse request JSON into the stored form of a resource,
//! collecting every problem with its dotted field path.

use crate::domain;
use crate::error::FieldError;
use crate::schema::{Field, Ty};
use serde_json::{Map, Value};

pub const MAX_STR: usize = 500;
pub const MAX_TEXT: usize = 10_000;
pub const MAX_METADATA_KEYS: usize = 50;
pub const MAX_JSON_BYTES: usize = 16 * 1024;

/// What kind of JSON value this is, for messages ("a string", "null").
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Validate an object against `fields`: unknown keys, required fields and
/// each value's type. Returns the normalised object.
pub fn object(
    fields: &[Field],
    input: &Map<String, Value>,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for key in input.keys() {
        match fields.iter().find(|f| f.name == key.as_str()) {
            None => errors.push(unknown(prefix, key, fields.iter().map(|f| f.name))),
            Some(f) if f.read_only => errors.push(FieldError::new(
                format!("{prefix}{key}"),
                "is set by the server and cannot be written",
            )),
            Some(_) => {}
        }
    }
    for f in fields {
        let path = format!("{prefix}{}", f.name);
        match input.get(f.name).filter(|v| !v.is_null()) {
            None => {
                if f.required && !f.read_only {
                    errors.push(FieldError::new(path, "is required"));
                }
            }
            Some(_) if f.read_only => {}
            Some(v) => {
                if let Some(clean) = value(&f.ty, v, &path, f.required, errors) {
                    out.insert(f.name.to_string(), clean);
                }
            }
        }
    }
    out
}

/// "is not a known field", with the nearest known one when there is one.
pub fn unknown<'a>(prefix: &str, key: &str, known: impl Iterator<Item = &'a str>) -> FieldError {
    let path = format!("{prefix}{}", crate::query::qs::truncate(key));
    match domain::nearest(key, known) {
        Some(n) => FieldError::new(path, format!("is not a known field; did you mean `{n}`?")),
        None => FieldError::new(path, "is not a known field"),
    }
}

/// Refuse keys a resource does not have, whatever their value (`null`
/// included), at every level of nested objects: what a merge patch or a
/// create body may hold.
pub fn known_keys(
    res: &crate::resources::Resource,
    input: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) {
    let names = || {
        res.fields
            .iter()
            .map(|f| f.name)
            .chain(res.groups.iter().map(|g| g.name_field))
    };
    for (key, v) in input {
        if res.groups.iter().any(|g| g.name_field == key) {
            continue;
        }
        if res.common.iter().any(|f| f.name == key) {
            continue; // refused with its own message
        }
        match res.fields.iter().find(|f| f.name == key) {
            None => errors.push(unknown("", key, names())),
            Some(f) => nested_keys(&f.ty, v, key, errors),
        }
    }
}

fn nested_keys(ty: &Ty, v: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if let (Ty::Object(fields), Value::Object(m)) = (ty, v) {
        for (key, inner) in m {
            match fields.iter().find(|f| f.name == key) {
                None => errors.push(unknown(
                    &format!("{path}."),
                    key,
                    fields.iter().map(|f| f.name),
                )),
                Some(f) => nested_keys(&f.ty, inner, &format!("{path}.{key}"), errors),
            }
        }
    }
}

fn string(v: &Value) -> Result<&str, String> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(format!("must be a string, not {}", kind_of(other))),
    }
}

/// Validate a scalar value into its stored form, or say what is wrong.
fn scalar(ty: &Ty, v: &Value, required: bool) -> Result<Value, String> {
    let ok = |s: &str| Ok(Value::String(s.to_string()));
    match ty {
        Ty::Str | Ty::Text => {
            let s = string(v)?;
            let max = if matches!(ty, Ty::Str) {
                MAX_STR
            } else {
                MAX_TEXT
            };
            if required && s.trim().is_empty() {
                Err("must not be empty".into())
            } else if s.chars().count() > max {
                Err(format!("must be at most {max} characters"))
            } else {
                ok(s)
            }
        }
        Ty::LongText(max) => {
            let s = string(v)?;
            if required && s.trim().is_empty() {
                Err("must not be empty".into())
            } else if s.len() > *max {
                Err(format!("must be at most {max} bytes"))
            } else {
                ok(s)
            }
        }
        Ty::Number { min, max } => match v.as_f64() {
            Some(n) if n >= *min && n <= *max => Ok(v.clone()),
            Some(_) => Err(format!("must be a number from {min} to {max}")),
            None => Err(format!("must be a number, not {}", kind_of(v))),
        },
        Ty::Int { min, max } => match v.as_i64() {
            Some(n) if n >= *min && n <= *max => Ok(Value::from(n)),
            Some(_) if *max == i64::MAX => Err(format!("must be an integer ≥ {min}")),
            Some(_) => Err(format!("must be an integer from {min} to {max}")),
            None => Err(format!(
                "must be an integer, not {}",
                if v.is_number() {
                    "a fraction"
                } else {
                    kind_of(v)
                }
            )),
        },
        Ty::Bool => match v {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            other => Err(format!("must be true or false, not {}", kind_of(other))),
        },
        Ty::Timestamp => {
            let parsed = match v {
                Value::String(s) => crate::time::parse_timestamp(s),
                Value::Number(n) => n.as_i64().and_then(crate::time::in_range),
                _ => None,
            };
            parsed
                .map(|ms| Value::String(crate::time::format_ms(ms)))
                .ok_or_else(|| "must be an RFC 3339 timestamp (or Unix milliseconds)".into())
        }
        Ty::Date => {
            let s = string(v)?;
            match crate::time::parse_date(s) {
                Some(_) => ok(s),
                None => Err(format!(
                    "must be a calendar date YYYY-MM-DD, got `{}`",
                    crate::query::qs::truncate(s)
                )),
            }
        }
        Ty::Email => {
            let s = string(v)?.trim();
            if domain::valid_email(s) {
                ok(s)
            } else {
                Err("must be a valid email address".into())
            }
        }
        Ty::Phone => {
            let s = string(v)?.trim();
            if domain::valid_phone(s) {
                ok(s)
            } else {
                Err("must be a phone number in E.164 (+447700900123) or national digits (07700 900123)".into())
            }
        }
        Ty::Country => {
            let s = string(v)?.trim().to_ascii_uppercase();
            if domain::countries::is_alpha3(&s) {
                Ok(Value::String(s))
            } else {
                Err("must be an ISO 3166-1 alpha-3 country code such as GBR".into())
            }
        }
        Ty::Url => {
            let s = string(v)?.trim();
            match crate::domain::parse_url(s) {
                Some(_) => ok(s),
                None => Err("must be an absolute http:// or https:// URL with a host".into()),
            }
        }
        Ty::Currency => {
            let s = string(v)?.trim().to_ascii_uppercase();
            if domain::currencies::exponent(&s).is_some() {
                Ok(Value::String(s))
            } else {
                Err("must be an active ISO 4217 currency code such as GBP, EUR or JPY".into())
            }
        }
        Ty::LocalTime => {
            let s = string(v)?;
            if domain::parse_local_time(s).is_some() {
                ok(s)
            } else {
                Err(format!(
                    "must be a time of day HH:MM (24-hour clock), got `{}`",
                    crate::query::qs::truncate(s)
                ))
            }
        }
        Ty::TimeZone => {
            let s = string(v)?;
            if domain::valid_time_zone(s) {
                ok(s)
            } else {
                Err("must be an IANA time zone such as Europe/London".into())
            }
        }
        Ty::Ref(target) => {
            let s = string(v)?;
            let res = crate::resources::by_path(target);
            let prefix = res.map(|r| r.prefix).unwrap_or("");
            if crate::ids::has_prefix(s, prefix) {
                ok(s)
            } else {
                Err(format!(
                    "must be the id of a {} (`{prefix}_…`)",
                    res.map_or(*target, |r| r.label)
                ))
            }
        }
        Ty::Enum(options) => {
            let s = string(v)?;
            if options.contains(&s) {
                ok(s)
            } else {
                Err(format!("must be one of: {}", options.join(", ")))
            }
        }
        Ty::Json => match v {
            Value::Object(_) if v.to_string().len() > MAX_JSON_BYTES => {
                Err(format!("must serialise to at most {MAX_JSON_BYTES} bytes"))
            }
            Value::Object(_) => Ok(v.clone()),
            other => Err(format!("must be an object, not {}", kind_of(other))),
        },
        Ty::Object(_) | Ty::Array(..) | Ty::Metadata => Err("is not a scalar".into()),
    }
}

/// Validate one value; `None` when invalid (the errors are recorded).
pub fn value(
    ty: &Ty,
    v: &Value,
    path: &str,
    required: bool,
    errors: &mut Vec<FieldError>,
) -> Option<Value> {
    match ty {
        Ty::Object(fields) => match v {
            Value::Object(m) => Some(Value::Object(object(
                fields,
                m,
                &format!("{path}."),
                errors,
            ))),
            other => {
                errors.push(FieldError::new(
                    path,
                    format!("must be an object, not {}", kind_of(other)),
                ));
                None
            }
        },
        Ty::Array(inner, max) => match v {
            Value::Array(items) if items.len() <= *max => {
                let before = errors.len();
                let out: Vec<Value> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| {
                        value(inner, item, &format!("{path}[{i}]"), true, errors)
                    })
                    .collect();
                (errors.len() == before).then_some(Value::Array(out))
            }
            Value::Array(_) => {
                errors.push(FieldError::new(
                    path,
                    format!("must have at most {max} entries"),
                ));
                None
            }
            other => {
                errors.push(FieldError::new(
                    path,
                    format!("must be an array, not {}", kind_of(other)),
                ));
                None
            }
        },
        Ty::Metadata => metadata(v, path, errors),
        _ => match scalar(ty, v, required) {
            Ok(v) => Some(v),
            Err(m) => {
                errors.push(FieldError::new(path, m));
                None
            }
        },
    }
}

fn metadata(v: &Value, path: &str, errors: &mut Vec<FieldError>) -> Option<Value> {
    let Value::Object(m) = v else {
        errors.push(FieldError::new(
            path,
            format!("must be an object of string values, not {}", kind_of(v)),
        ));
        return None;
    };
    if m.len() > MAX_METADATA_KEYS {
        errors.push(FieldError::new(
            path,
            format!("must have at most {MAX_METADATA_KEYS} keys"),
        ));
        return None;
    }
    let before = errors.len();
    let mut out = Map::new();
    for (k, val) in m {
        let key_path = format!("{path}.{}", crate::query::qs::truncate(k));
        match val {
            _ if k.is_empty() || k.chars().count() > 40 => {
                errors.push(FieldError::new(key_path, "keys must be 1 to 40 characters"))
            }
            Value::String(s) if s.chars().count() <= MAX_STR => {
                out.insert(k.clone(), Value::String(s.clone()));
            }
            Value::String(_) => errors.push(FieldError::new(
                key_path,
                format!("values must be at most {MAX_STR} characters"),
            )),
            Value::Null => {}
            other => errors.push(FieldError::new(
                key_path,
                format!("values must be strings, not {}", kind_of(other)),
            )),
        }
    }
    (errors.len() == before).then_some(Value::Object(out))
}
