//! Columnar views of a collection for fast list evaluation. For each path a
//! query touches, a column holds one compact cell per document (numbers and
//! booleans inline, strings in one contiguous arena), so filters and sorts
//! scan warm, contiguous memory instead of chasing pointers through every
//! JSON document. A path whose values are not plain scalars in some document
//! (arrays, objects) has no column; evaluation then reads the documents.

use serde_json::Value;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy)]
pub enum Cell {
    Missing,
    Null,
    Num(f64),
    Str(u32, u32),
    Bool(bool),
}

pub struct Column {
    pub cells: Vec<Cell>,
    arena: String,
}

impl Column {
    pub fn str(&self, off: u32, len: u32) -> &str {
        &self.arena[off as usize..(off + len) as usize]
    }

    fn build<T: AsRef<Value>>(docs: &[T], path: &[String]) -> Option<Column> {
        let mut cells = Vec::with_capacity(docs.len());
        let mut arena = String::new();
        for d in docs {
            let mut cur = d.as_ref();
            let mut found = true;
            for seg in path {
                match cur {
                    Value::Object(m) => match m.get(seg.as_str()) {
                        Some(v) => cur = v,
                        None => {
                            found = false;
                            break;
                        }
                    },
                    Value::Array(_) => return None,
                    _ => {
                        found = false;
                        break;
                    }
                }
            }
            cells.push(if !found {
                Cell::Missing
            } else {
                match cur {
                    Value::Null => Cell::Null,
                    Value::Bool(b) => Cell::Bool(*b),
                    Value::Number(n) => Cell::Num(n.as_f64()?),
                    Value::String(s) => {
                        let off = u32::try_from(arena.len()).ok()?;
                        arena.push_str(s);
                        Cell::Str(off, s.len() as u32)
                    }
                    Value::Array(_) | Value::Object(_) => return None,
                }
            });
        }
        Some(Column { cells, arena })
    }

    /// The cell as a JSON value (for cursor positions and comparisons).
    pub fn value(&self, row: usize) -> Option<Value> {
        match self.cells[row] {
            Cell::Missing | Cell::Null => None,
            Cell::Num(n) => serde_json::Number::from_f64(n).map(Value::Number),
            Cell::Str(o, l) => Some(Value::String(self.str(o, l).to_string())),
            Cell::Bool(b) => Some(Value::Bool(b)),
        }
    }

    fn rank(c: Cell) -> u8 {
        match c {
            Cell::Missing | Cell::Null => 0,
            Cell::Num(_) => 1,
            Cell::Str(..) => 2,
            Cell::Bool(_) => 3,
        }
    }

    /// adapter-commons `compare` between two rows.
    pub fn compare_rows(&self, a: usize, b: usize) -> Ordering {
        let (x, y) = (self.cells[a], self.cells[b]);
        match (x, y) {
            (Cell::Num(p), Cell::Num(q)) => p.partial_cmp(&q).unwrap_or(Ordering::Equal),
            (Cell::Str(o1, l1), Cell::Str(o2, l2)) => self.str(o1, l1).cmp(self.str(o2, l2)),
            (Cell::Bool(p), Cell::Bool(q)) => p.cmp(&q),
            _ => Self::rank(x).cmp(&Self::rank(y)),
        }
    }

    /// Equality with a query value, as `eval::same`.
    pub fn eq_value(&self, row: usize, v: &Value) -> bool {
        match (self.cells[row], v) {
            (Cell::Num(n), Value::Number(m)) => m.as_f64() == Some(n),
            (Cell::Str(o, l), Value::String(s)) => self.str(o, l) == s,
            (Cell::Bool(b), Value::Bool(c)) => b == *c,
            (Cell::Null, Value::Null) => true,
            _ => false,
        }
    }

    /// Same-type ordering with a query value, as `eval::ordered`.
    pub fn ord_value(&self, row: usize, v: &Value) -> Option<Ordering> {
        match (self.cells[row], v) {
            (Cell::Num(n), Value::Number(m)) => n.partial_cmp(&m.as_f64()?),
            (Cell::Str(o, l), Value::String(s)) => Some(self.str(o, l).cmp(s.as_str())),
            (Cell::Bool(b), Value::Bool(c)) => Some(b.cmp(c)),
            _ => None,
        }
    }

    /// adapter-commons `compare` between a row and a value (`None`: missing).
    pub fn compare_to(&self, row: usize, other: Option<&Value>) -> Ordering {
        let other = other.filter(|v| !v.is_null());
        match (self.cells[row], other) {
            (Cell::Missing | Cell::Null, None) => Ordering::Equal,
            (Cell::Missing | Cell::Null, Some(_)) => Ordering::Less,
            (_, None) => Ordering::Greater,
            (c, Some(v)) => {
                let vr = match v {
                    Value::Number(_) => 1,
                    Value::String(_) => 2,
                    Value::Bool(_) => 3,
                    _ => 4,
                };
                match Self::rank(c).cmp(&vr) {
                    Ordering::Equal => self.ord_value(row, v).unwrap_or(Ordering::Equal),
                    o => o,
                }
            }
        }
    }

    pub fn missing(&self, row: usize) -> bool {
        matches!(self.cells[row], Cell::Missing)
    }
}

/// A snapshot of one collection, in creation order, with columns built on
/// demand.
pub struct Index<T> {
    pub docs: Vec<T>,
    columns: Mutex<HashMap<Vec<String>, Option<Arc<Column>>>>,
}

impl<T: AsRef<Value>> Index<T> {
    pub fn new(docs: Vec<T>) -> Index<T> {
        Index {
            docs,
            columns: Mutex::new(HashMap::new()),
        }
    }

    /// The column of a path, or `None` when some value there is not a scalar.
    pub fn column(&self, path: &[String]) -> Option<Arc<Column>> {
        let mut cols = self.columns.lock().unwrap_or_else(|e| e.into_inner());
        cols.entry(path.to_vec())
            .or_insert_with(|| Column::build(&self.docs, path).map(Arc::new))
            .clone()
    }
}
