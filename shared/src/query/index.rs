//! Columnar views of a collection for fast list evaluation. For each path a
//! query touches, a column holds one compact cell per document (numbers and
//! booleans inline, strings in one contiguous arena), so filters and sorts
//! scan warm, contiguous memory instead of chasing pointers through every
//! JSON document. A path whose values are not plain scalars in some document
//! (arrays, objects) has no column; evaluation then reads the documents.

use super::view::{Document, Scalar, View};
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    Missing,
    Null,
    Num(f64),
    Str(u32, u32),
    Bool(bool),
}

#[derive(Clone)]
pub struct Column {
    pub cells: Vec<Cell>,
    arena: String,
    /// The arena's size when built: strings replaced since are garbage,
    /// and past a bound the column is dropped and rebuilt on demand.
    built_arena: usize,
}

/// The cell of one document at `path`, its string pushed onto `arena`;
/// `None` when the value there is not a scalar (the path gets no column).
fn cell_of<'a, J: View<'a>>(doc: J, path: &[String], arena: &mut String) -> Option<Cell> {
    let mut cur = doc;
    for seg in path {
        match cur.scalar() {
            Scalar::Object => match cur.get(seg) {
                Some(v) => cur = v,
                None => return Some(Cell::Missing),
            },
            Scalar::Array => return None,
            _ => return Some(Cell::Missing),
        }
    }
    Some(match cur.scalar() {
        Scalar::Null => Cell::Null,
        Scalar::Bool(b) => Cell::Bool(b),
        Scalar::Num(n) => Cell::Num(n),
        Scalar::Str(s) => {
            let off = u32::try_from(arena.len()).ok()?;
            let len = u32::try_from(s.len()).ok()?;
            off.checked_add(len)?;
            arena.push_str(s);
            Cell::Str(off, len)
        }
        Scalar::Array | Scalar::Object => return None,
    })
}

impl Column {
    pub fn str(&self, off: u32, len: u32) -> &str {
        &self.arena[off as usize..(off + len) as usize]
    }

    /// A string cell's bytes (UTF-8 byte order is the strings' order).
    fn bytes(&self, off: u32, len: u32) -> &[u8] {
        &self.arena.as_bytes()[off as usize..(off + len) as usize]
    }

    fn build<T: Document>(docs: &[T], path: &[String]) -> Option<Column> {
        let mut cells = Vec::with_capacity(docs.len());
        let mut arena = String::new();
        for d in docs {
            cells.push(cell_of(d.root(), path, &mut arena)?);
        }
        let built_arena = arena.len();
        Some(Column {
            cells,
            arena,
            built_arena,
        })
    }

    /// Whether replaced strings have left the arena mostly garbage.
    fn wasteful(&self) -> bool {
        self.arena.len() > 2 * self.built_arena + (1 << 16)
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
            (Cell::Str(o1, l1), Cell::Str(o2, l2)) => self.bytes(o1, l1).cmp(self.bytes(o2, l2)),
            (Cell::Bool(p), Cell::Bool(q)) => p.cmp(&q),
            _ => Self::rank(x).cmp(&Self::rank(y)),
        }
    }

    /// Equality with a query value, as `eval::same`.
    pub fn eq_value(&self, row: usize, v: &Value) -> bool {
        match (self.cells[row], v) {
            (Cell::Num(n), Value::Number(m)) => m.as_f64() == Some(n),
            (Cell::Str(o, l), Value::String(s)) => {
                l as usize == s.len() && self.bytes(o, l) == s.as_bytes()
            }
            (Cell::Bool(b), Value::Bool(c)) => b == *c,
            (Cell::Null, Value::Null) => true,
            _ => false,
        }
    }

    /// Same-type ordering with a query value, as `eval::ordered`.
    pub fn ord_value(&self, row: usize, v: &Value) -> Option<Ordering> {
        match (self.cells[row], v) {
            (Cell::Num(n), Value::Number(m)) => n.partial_cmp(&m.as_f64()?),
            (Cell::Str(o, l), Value::String(s)) => Some(self.bytes(o, l).cmp(s.as_bytes())),
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

/// One change to a collection, for [`Index::apply`]: the document with
/// this id is now `doc` (`None`: deleted).
pub struct Change<T> {
    pub id: String,
    pub doc: Option<T>,
}

impl<T: Clone> Clone for Index<T> {
    fn clone(&self) -> Self {
        let columns = self.columns.lock().unwrap_or_else(|e| e.into_inner());
        Index {
            docs: self.docs.clone(),
            columns: Mutex::new(columns.clone()),
        }
    }
}

fn id_of<'a, J: View<'a>>(v: J) -> Option<&'a str> {
    v.get("id").and_then(View::as_str)
}

impl<T: Document> Index<T> {
    pub fn new(docs: Vec<T>) -> Index<T> {
        Index {
            docs,
            columns: Mutex::new(HashMap::new()),
        }
    }

    /// Whether every document's `id` is a string in strictly ascending
    /// order: the order [`Index::apply`] finds rows by.
    pub fn ordered_by_id(&self) -> bool {
        let mut prev: Option<&str> = None;
        for d in &self.docs {
            match id_of(d.root()) {
                Some(id) if prev.is_none_or(|p| p < id) => prev = Some(id),
                _ => return false,
            }
        }
        true
    }

    /// This snapshot with `changes` applied in order, keeping the columns
    /// built so far (their cells updated in place, not rebuilt). Requires
    /// [`Index::ordered_by_id`]; documents must carry their id.
    pub fn apply(&mut self, changes: Vec<Change<T>>) {
        let columns = self.columns.get_mut().unwrap_or_else(|e| e.into_inner());
        for Change { id, doc } in changes {
            let found = self
                .docs
                .binary_search_by(|d| id_of(d.root()).unwrap_or("").cmp(id.as_str()));
            match (found, doc) {
                (Ok(row), Some(doc)) => {
                    for (path, col) in columns.iter_mut() {
                        if let Some(c) = col {
                            let c = Arc::make_mut(c);
                            match cell_of(doc.root(), path, &mut c.arena) {
                                Some(cell) => c.cells[row] = cell,
                                None => *col = None,
                            }
                        }
                    }
                    self.docs[row] = doc;
                }
                (Err(row), Some(doc)) => {
                    for (path, col) in columns.iter_mut() {
                        if let Some(c) = col {
                            let c = Arc::make_mut(c);
                            match cell_of(doc.root(), path, &mut c.arena) {
                                Some(cell) => c.cells.insert(row, cell),
                                None => *col = None,
                            }
                        }
                    }
                    self.docs.insert(row, doc);
                }
                (Ok(row), None) => {
                    for c in columns.values_mut().flatten() {
                        Arc::make_mut(c).cells.remove(row);
                    }
                    self.docs.remove(row);
                }
                (Err(_), None) => {}
            }
        }
        // A path that now holds a non-scalar keeps no column (queries read
        // the documents); a column whose arena is mostly garbage is dropped
        // and rebuilt when next needed.
        columns.retain(|_, c| c.as_ref().is_none_or(|c| !c.wasteful()));
    }

    /// The column of a path, or `None` when some value there is not a scalar.
    pub fn column(&self, path: &[String]) -> Option<Arc<Column>> {
        let mut cols = self.columns.lock().unwrap_or_else(|e| e.into_inner());
        cols.entry(path.to_vec())
            .or_insert_with(|| Column::build(&self.docs, path).map(Arc::new))
            .clone()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A small deterministic generator (xorshift), for this crate's tests.
    pub(crate) struct Rng(u64);
    impl Rng {
        pub(crate) fn seeded(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        }

        /// 0..n (n > 0).
        pub(crate) fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn doc(rng: &mut Rng, id: u64) -> Arc<Value> {
        let city = ["Leeds", "York", "Hull", ""][rng.next(4) as usize];
        let mut d = json!({
            "id": format!("{id:06}"),
            "age": rng.next(90),
            "address": {"city": city},
            "flag": rng.next(2) == 0,
        });
        match rng.next(8) {
            0 => d["age"] = Value::Null,
            1 => {
                d.as_object_mut().map(|m| m.remove("address"));
            }
            // A non-scalar where the columns expect scalars.
            2 if rng.next(4) == 0 => d["address"]["city"] = json!(["Leeds"]),
            _ => {}
        }
        Arc::new(d)
    }

    fn paths() -> Vec<Vec<String>> {
        [
            &["age"][..],
            &["address", "city"],
            &["flag"],
            &["id"],
            &["nope"],
        ]
        .iter()
        .map(|p| p.iter().map(|s| s.to_string()).collect())
        .collect()
    }

    fn cells<T: Document>(idx: &Index<T>, path: &[String]) -> Option<Vec<Option<Value>>> {
        let col = idx.column(path)?;
        Some(
            (0..idx.docs.len())
                .map(|r| match col.cells[r] {
                    Cell::Missing => Some(json!("<missing>")),
                    _ => col.value(r).or(Some(Value::Null)),
                })
                .collect(),
        )
    }

    /// Packed documents (the embedded store's mirror) and parsed ones
    /// (DynamoDB's pages) answer every query alike: same columns, same
    /// pages, same totals, cursors walked forward included.
    #[test]
    fn packed_and_parsed_documents_evaluate_alike() {
        use crate::query::{eval, Filter, ListQuery, Op, SortKey};
        use crate::store::packed::Packed;
        let p = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        let field = |path: &str, op| Filter::Field { path: p(path), op };
        for seed in 1..30u64 {
            let mut rng = Rng::seeded(seed);
            let parsed: Vec<Arc<Value>> = (0..80).map(|i| doc(&mut rng, i)).collect();
            let packed: Vec<Packed> = parsed.iter().map(|d| Packed::new(d)).collect();
            let (a, b) = (Index::new(parsed.clone()), Index::new(packed));
            for path in paths() {
                assert_eq!(cells(&a, &path), cells(&b, &path));
            }
            let filters = [
                Filter::all(),
                field("address.city", Op::Eq(json!("Leeds"))),
                field("address.city", Op::Ne(json!("York"))),
                field("age", Op::Gte(json!(40))),
                field("age", Op::In(vec![json!(3), json!(50), Value::Null])),
                field("address", Op::Exists(false)),
                Filter::Or(vec![
                    field("flag", Op::Eq(json!(true))),
                    field("age", Op::Lt(json!(20))),
                ]),
            ];
            for (i, filter) in filters.into_iter().enumerate() {
                let sort = match i % 3 {
                    0 => vec![],
                    1 => vec![SortKey {
                        path: p("address.city"),
                        descending: false,
                    }],
                    _ => vec![SortKey {
                        path: p("age"),
                        descending: true,
                    }],
                };
                let mut q = ListQuery {
                    filter,
                    sort,
                    limit: 7,
                    want_total: true,
                    ..Default::default()
                };
                for _page in 0..4 {
                    let (x, y) = (eval::run(&a, &q, &[]), eval::run(&b, &q, &[]));
                    let ids =
                        |docs: Vec<Value>| docs.iter().map(|d| d["id"].clone()).collect::<Vec<_>>();
                    let xs = ids(x.page.iter().map(|d| (***d).clone()).collect());
                    let ys = ids(y.page.iter().map(|d| d.to_value()).collect());
                    assert_eq!(xs, ys, "seed {seed}, query {i}");
                    assert_eq!(
                        (x.total, x.has_prev, x.has_next),
                        (y.total, y.has_prev, y.has_next)
                    );
                    let (Some(last), Some(last_packed)) = (x.page.last(), y.page.last()) else {
                        break;
                    };
                    let pos = eval::position_of(&***last, &q, &[], false);
                    assert_eq!(pos, eval::position_of(last_packed.node(), &q, &[], false));
                    q.position = Some(pos);
                }
            }
        }
    }

    #[test]
    fn applied_changes_equal_a_fresh_build() {
        for seed in 1..40u64 {
            let mut rng = Rng::seeded(seed);
            let mut truth: std::collections::BTreeMap<u64, Arc<Value>> = Default::default();
            for id in 0..50 {
                if rng.next(3) > 0 {
                    truth.insert(id * 2, doc(&mut rng, id * 2));
                }
            }
            let mut index = Index::new(truth.values().cloned().collect::<Vec<_>>());
            assert!(index.ordered_by_id());
            // Build some columns, so there is something to keep up to date.
            for p in paths() {
                index.column(&p);
            }
            for _round in 0..20 {
                let mut changes = Vec::new();
                for _ in 0..rng.next(12) {
                    let id = rng.next(110);
                    let d = (rng.next(4) > 0).then(|| doc(&mut rng, id));
                    match &d {
                        Some(d) => truth.insert(id, d.clone()),
                        None => truth.remove(&id),
                    };
                    changes.push(Change {
                        id: format!("{id:06}"),
                        doc: d,
                    });
                }
                // Readers may hold the old snapshot: apply to a copy.
                let held = Arc::new(index);
                let mut next = (*held).clone();
                next.apply(changes);
                index = next;
                let fresh = Index::new(truth.values().cloned().collect::<Vec<_>>());
                assert_eq!(index.docs, fresh.docs, "seed {seed}");
                for p in paths() {
                    let (a, b) = (cells(&index, &p), cells(&fresh, &p));
                    // A path whose column was given up reads documents: both
                    // answer the same through `eval`; where both have
                    // columns, every cell agrees.
                    if let (Some(a), Some(b)) = (&a, &b) {
                        assert_eq!(a, b, "seed {seed}, path {p:?}");
                    }
                    if b.is_none() {
                        assert!(a.is_none(), "seed {seed}: {p:?} holds a non-scalar");
                    }
                }
            }
        }
    }
}
