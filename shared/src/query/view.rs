//! A read-only view of a JSON value, so the list engine evaluates queries
//! the same way over a parsed `serde_json::Value` (what the DynamoDB store
//! reads and the domain code builds) and over a packed document (what the
//! embedded store's mirror keeps: [`crate::store::packed`]).

use serde_json::Value;
use std::sync::Arc;

/// What a value is, without its children.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Num(f64),
    Str(&'a str),
    Array,
    Object,
}

/// A JSON value read in place. Copying a view copies a reference.
pub trait View<'a>: Copy + 'a {
    type Items: Iterator<Item = Self>;
    type Entries: Iterator<Item = (&'a str, Self)>;

    fn scalar(self) -> Scalar<'a>;
    /// The member `key` of an object (`None` for anything else).
    fn get(self, key: &str) -> Option<Self>;
    /// The elements of an array (`None` for anything else).
    fn items(self) -> Option<Self::Items>;
    /// The members of an object in their order (`None` for anything else).
    fn entries(self) -> Option<Self::Entries>;
    /// The value, parsed (for the rare comparisons of arrays and objects,
    /// and for cursor positions).
    fn to_value(self) -> Value;
    /// A non-negative integer's value (`None` for a float, as
    /// `Value::as_u64`).
    fn as_u64(self) -> Option<u64>;

    fn as_str(self) -> Option<&'a str> {
        match self.scalar() {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The members of a parsed object, as a view gives them.
pub struct ValueEntries<'a>(serde_json::map::Iter<'a>);

impl<'a> Iterator for ValueEntries<'a> {
    type Item = (&'a str, &'a Value);
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k.as_str(), v))
    }
}

impl<'a> View<'a> for &'a Value {
    type Items = std::slice::Iter<'a, Value>;
    type Entries = ValueEntries<'a>;

    fn scalar(self) -> Scalar<'a> {
        match self {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            // Always a number without serde_json's arbitrary precision.
            Value::Number(n) => Scalar::Num(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => Scalar::Str(s),
            Value::Array(_) => Scalar::Array,
            Value::Object(_) => Scalar::Object,
        }
    }

    fn get(self, key: &str) -> Option<Self> {
        self.as_object()?.get(key)
    }

    fn items(self) -> Option<Self::Items> {
        self.as_array().map(|a| a.iter())
    }

    fn entries(self) -> Option<Self::Entries> {
        self.as_object().map(|m| ValueEntries(m.iter()))
    }

    fn to_value(self) -> Value {
        self.clone()
    }

    fn as_u64(self) -> Option<u64> {
        Value::as_u64(self)
    }
}

/// A stored document the list engine reads: its root value as a view.
pub trait Document {
    type Root<'a>: View<'a>
    where
        Self: 'a;
    fn root(&self) -> Self::Root<'_>;
}

impl Document for Arc<Value> {
    type Root<'a> = &'a Value;
    fn root(&self) -> &Value {
        self
    }
}

/// Two views equal as JSON values (numbers by value).
pub fn same<'a, 'b, A: View<'a>, B: View<'b>>(a: A, b: B) -> bool {
    match (a.scalar(), b.scalar()) {
        (Scalar::Array, Scalar::Array) | (Scalar::Object, Scalar::Object) => {
            a.to_value() == b.to_value()
        }
        (x, y) => x == y,
    }
}
