//! Evaluation with the semantics of Feathers' memory adapter: sift-style
//! matching (a condition on an array matches any element; `$ne`/`$nin`
//! match a missing field) and adapter-commons' sorter (missing first when
//! ascending, then numbers, strings, booleans; stable, so creation order
//! breaks ties). Order of work: filter, stable sort, skip, limit.
//!
//! Documents are read through [`View`]: parsed values and packed ones
//! evaluate alike.

use super::index::{Column, Index};
use super::view::{same, Document, Scalar, View};
use super::{Filter, ListQuery, Op};
use serde_json::Value;
use std::cmp::Ordering;
use std::sync::Arc;

/// Does any value a dotted path reaches satisfy `pred`? Looks through
/// arrays like sift does: the array itself and each element count.
fn any_at<'a, J: View<'a>>(v: J, path: &[String], pred: &mut dyn FnMut(J) -> bool) -> bool {
    match path.split_first() {
        None => match v.items() {
            Some(mut items) => pred(v) || items.any(&mut *pred),
            None => pred(v),
        },
        Some((head, rest)) => match v.items() {
            Some(mut items) => items.any(|item| any_at(item, path, pred)),
            None => v.get(head).is_some_and(|child| any_at(child, rest, pred)),
        },
    }
}

fn ordered<'a, 'b, A: View<'a>, B: View<'b>>(a: A, b: B) -> Option<Ordering> {
    match (a.scalar(), b.scalar()) {
        (Scalar::Num(x), Scalar::Num(y)) => x.partial_cmp(&y),
        (Scalar::Str(x), Scalar::Str(y)) => Some(x.cmp(y)),
        (Scalar::Bool(x), Scalar::Bool(y)) => Some(x.cmp(&y)),
        _ => None,
    }
}

fn field_matches<'a, J: View<'a>>(doc: J, path: &[String], op: &Op) -> bool {
    let any = |pred: &mut dyn FnMut(J) -> bool| any_at(doc, path, pred);
    match op {
        Op::Eq(x) => any(&mut |v| same(v, x)),
        Op::Ne(x) => !any(&mut |v| same(v, x)),
        Op::In(xs) => any(&mut |v| xs.iter().any(|x| same(v, x))),
        Op::Nin(xs) => !any(&mut |v| xs.iter().any(|x| same(v, x))),
        Op::Lt(x) => any(&mut |v| ordered(v, x) == Some(Ordering::Less)),
        Op::Lte(x) => any(&mut |v| matches!(ordered(v, x), Some(Ordering::Less | Ordering::Equal))),
        Op::Gt(x) => any(&mut |v| ordered(v, x) == Some(Ordering::Greater)),
        Op::Gte(x) => {
            any(&mut |v| matches!(ordered(v, x), Some(Ordering::Greater | Ordering::Equal)))
        }
        Op::Exists(want) => any(&mut |_| true) == *want,
    }
}

pub fn matches<'a, J: View<'a>>(doc: J, filter: &Filter) -> bool {
    match filter {
        Filter::And(fs) => fs.iter().all(|f| matches(doc, f)),
        Filter::Or(fs) => fs.iter().any(|f| matches(doc, f)),
        Filter::Field { path, op } => field_matches(doc, path, op),
    }
}

/// The value a sort key reads: plain object traversal (no array mapping).
fn sort_value<'a, J: View<'a>>(doc: J, path: &[String]) -> Option<J> {
    let mut cur = doc;
    for seg in path {
        cur = cur.get(seg)?;
    }
    match cur.scalar() {
        Scalar::Null => None,
        _ => Some(cur),
    }
}

fn rank(v: Scalar<'_>) -> u8 {
    match v {
        Scalar::Null => 0,
        Scalar::Num(_) => 1,
        Scalar::Str(_) => 2,
        Scalar::Bool(_) => 3,
        Scalar::Array => 4,
        Scalar::Object => 5,
    }
}

/// adapter-commons `compare`: missing/null < numbers < strings < booleans < arrays < objects.
pub fn compare<'a, 'b, A: View<'a>, B: View<'b>>(a: Option<A>, b: Option<B>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => match rank(x.scalar()).cmp(&rank(y.scalar())) {
            Ordering::Equal => match (x.items(), y.items()) {
                (Some(p), Some(q)) => {
                    let (p, q): (Vec<A>, Vec<B>) = (p.collect(), q.collect());
                    for (i, j) in p.iter().zip(&q) {
                        let c = compare(Some(*i), Some(*j));
                        if c != Ordering::Equal {
                            return c;
                        }
                    }
                    p.len().cmp(&q.len())
                }
                _ => match (x.entries(), y.entries()) {
                    (Some(p), Some(q)) => {
                        // adapter-commons: values at the i-th sorted key of each, then key count.
                        let mut p: Vec<(&str, A)> = p.collect();
                        let mut q: Vec<(&str, B)> = q.collect();
                        p.sort_by(|a, b| a.0.cmp(b.0));
                        q.sort_by(|a, b| a.0.cmp(b.0));
                        for (i, j) in p.iter().zip(&q) {
                            let c = compare(Some(i.1), Some(j.1));
                            if c != Ordering::Equal {
                                return c;
                            }
                        }
                        p.len().cmp(&q.len())
                    }
                    _ => ordered(x, y).unwrap_or(Ordering::Equal),
                },
            },
            other => other,
        },
    }
}

fn id_of<'a, J: View<'a>>(doc: J) -> &'a str {
    doc.get("id").and_then(View::as_str).unwrap_or_default()
}

/// The result of a query over one collection.
pub struct Run<'a, T> {
    pub page: Vec<&'a T>,
    /// Matches of the filter and search (ignoring cursor, skip and limit).
    pub total: usize,
    pub has_prev: bool,
    pub has_next: bool,
}

/// A filter bound to an index: each clause reads a column when the path has
/// one, else the documents.
enum Compiled<'q> {
    And(Vec<Compiled<'q>>),
    Or(Vec<Compiled<'q>>),
    Col(Arc<Column>, &'q Op),
    Doc(&'q [String], &'q Op),
}

fn compile<'q, T: Document>(f: &'q Filter, idx: &Index<T>) -> Compiled<'q> {
    match f {
        Filter::And(fs) => Compiled::And(fs.iter().map(|f| compile(f, idx)).collect()),
        Filter::Or(fs) => Compiled::Or(fs.iter().map(|f| compile(f, idx)).collect()),
        Filter::Field { path, op } => match idx.column(path) {
            Some(col) => Compiled::Col(col, op),
            None => Compiled::Doc(path, op),
        },
    }
}

fn test_row<T: Document>(c: &Compiled<'_>, idx: &Index<T>, row: usize) -> bool {
    match c {
        Compiled::And(cs) => cs.iter().all(|c| test_row(c, idx, row)),
        Compiled::Or(cs) => cs.iter().any(|c| test_row(c, idx, row)),
        Compiled::Doc(path, op) => field_matches(idx.docs[row].root(), path, op),
        Compiled::Col(col, op) => match op {
            Op::Eq(x) => col.eq_value(row, x),
            Op::Ne(x) => !col.eq_value(row, x),
            Op::In(xs) => xs.iter().any(|x| col.eq_value(row, x)),
            Op::Nin(xs) => !xs.iter().any(|x| col.eq_value(row, x)),
            Op::Lt(x) => col.ord_value(row, x) == Some(Ordering::Less),
            Op::Lte(x) => matches!(
                col.ord_value(row, x),
                Some(Ordering::Less | Ordering::Equal)
            ),
            Op::Gt(x) => col.ord_value(row, x) == Some(Ordering::Greater),
            Op::Gte(x) => matches!(
                col.ord_value(row, x),
                Some(Ordering::Greater | Ordering::Equal)
            ),
            Op::Exists(want) => col.missing(row) != *want,
        },
    }
}

/// Keep the rows of `rows` that pass `c`, a clause at a time over the
/// whole candidate list (an `and` narrows it clause by clause), with each
/// operator chosen once per clause rather than once per row.
fn narrow<T: Document>(c: &Compiled<'_>, idx: &Index<T>, rows: &mut Vec<usize>) {
    match c {
        Compiled::And(cs) => {
            for c in cs {
                if rows.is_empty() {
                    return;
                }
                narrow(c, idx, rows);
            }
        }
        Compiled::Or(_) | Compiled::Doc(..) => rows.retain(|&r| test_row(c, idx, r)),
        Compiled::Col(col, op) => {
            let col: &Column = col;
            match op {
                Op::Eq(x) => rows.retain(|&r| col.eq_value(r, x)),
                Op::Ne(x) => rows.retain(|&r| !col.eq_value(r, x)),
                Op::In(xs) => rows.retain(|&r| xs.iter().any(|x| col.eq_value(r, x))),
                Op::Nin(xs) => rows.retain(|&r| !xs.iter().any(|x| col.eq_value(r, x))),
                _ => rows.retain(|&r| test_row(c, idx, r)),
            }
        }
    }
}

enum SortBy<'q> {
    Col(Arc<Column>, bool),
    Doc(&'q [String], bool),
}

/// Run a query over a collection snapshot (documents in creation order):
/// filter and search, then (stable) sort, then the cursor, skip and limit.
/// Ties keep creation (id) order, which makes the order total, so cursors
/// are exact.
pub fn run<'a, T: Document>(
    idx: &'a Index<T>,
    q: &ListQuery,
    search_fields: &[&str],
) -> Run<'a, T> {
    let filter = compile(&q.filter, idx);
    let n = idx.docs.len();
    if q.search.is_none() && q.sort.is_empty() && q.position.is_none() {
        // In creation order with nothing to score, sort or pass: the page
        // is a slice of the matches (of the whole collection, unfiltered).
        let want = q.skip.saturating_add(q.limit);
        let (total, page): (usize, Vec<&'a T>) = match &q.filter {
            Filter::And(fs) if fs.is_empty() => (
                n,
                (q.skip.min(n)..want.min(n)).map(|r| &idx.docs[r]).collect(),
            ),
            _ => {
                let mut rows: Vec<usize> = (0..n).collect();
                narrow(&filter, idx, &mut rows);
                let total = rows.len();
                let page = rows[q.skip.min(total)..want.min(total)]
                    .iter()
                    .map(|&r| &idx.docs[r])
                    .collect();
                (total, page)
            }
        };
        let nonempty = !page.is_empty();
        return Run {
            page,
            total,
            has_prev: q.skip > 0 && total > 0 && nonempty,
            has_next: total > want && nonempty,
        };
    }
    let matcher = q.search.as_ref().map(|s| s.matcher());
    let relevance = q.search.as_ref().is_some_and(|s| s.sort_by_relevance);
    // (row, relevance score)
    let mut hits: Vec<(usize, u32)> = Vec::new();
    let mut rows: Vec<usize> = (0..n).collect();
    narrow(&filter, idx, &mut rows);
    for row in rows {
        let score = match &matcher {
            Some(m) => match m.score(idx.docs[row].root(), search_fields) {
                Some(s) => s,
                None => continue,
            },
            None => 0,
        };
        hits.push((row, score));
    }
    let total = hits.len();
    let sort: Vec<SortBy<'_>> = q
        .sort
        .iter()
        .map(|k| match idx.column(&k.path) {
            Some(c) => SortBy::Col(c, k.descending),
            None => SortBy::Doc(&k.path, k.descending),
        })
        .collect();
    let ids = idx.column(&["id".to_string()]);
    let doc = |row: usize| idx.docs[row].root();
    let by_id = |a: usize, b: usize| match &ids {
        Some(c) => c.compare_rows(a, b),
        None => id_of(doc(a)).cmp(id_of(doc(b))),
    };
    let order = |a: &(usize, u32), b: &(usize, u32)| -> Ordering {
        if relevance {
            let c = b.1.cmp(&a.1);
            if c != Ordering::Equal {
                return c;
            }
        }
        for k in &sort {
            let (c, desc) = match k {
                SortBy::Col(col, d) => (col.compare_rows(a.0, b.0), *d),
                SortBy::Doc(p, d) => (
                    compare(sort_value(doc(a.0), p), sort_value(doc(b.0), p)),
                    *d,
                ),
            };
            if c != Ordering::Equal {
                return if desc { c.reverse() } else { c };
            }
        }
        by_id(a.0, b.0)
    };
    let mut removed = 0usize;
    let before = q.position.as_ref().is_some_and(|p| p.before);
    if let Some(pos) = &q.position {
        let pos_id = Value::String(pos.id.clone());
        hits.retain(|&(row, score)| {
            let c = against_position(
                row,
                score,
                relevance,
                &sort,
                doc(row),
                ids.as_deref(),
                pos,
                &pos_id,
            );
            let keep = if pos.before {
                c == Ordering::Less
            } else {
                c == Ordering::Greater
            };
            removed += usize::from(!keep);
            keep
        });
    }
    let want = q.skip.saturating_add(q.limit);
    let available = hits.len();
    let needs_sort = relevance || !q.sort.is_empty();
    // Walk away from the cursor: for `$before`, the nearest items are the last ones.
    let dir = |a: &(usize, u32), b: &(usize, u32)| if before { order(b, a) } else { order(a, b) };
    if needs_sort {
        if want < hits.len() {
            if want > 0 {
                hits.select_nth_unstable_by(want - 1, dir);
            }
            hits.truncate(want);
        }
        hits.sort_unstable_by(dir);
    } else if before {
        hits.reverse();
    }
    let end = want.min(hits.len());
    let start = q.skip.min(end);
    let mut page: Vec<&'a T> = hits[start..end]
        .iter()
        .map(|&(row, _)| &idx.docs[row])
        .collect();
    if before {
        page.reverse();
    }
    let more = available > want;
    let (has_prev, has_next) = match &q.position {
        None => (q.skip > 0 && total > 0, more),
        Some(p) if p.before => (more, removed > 0 || q.skip > 0),
        Some(_) => (removed > 0 || q.skip > 0, more),
    };
    let nonempty = !page.is_empty();
    Run {
        page,
        total,
        has_prev: has_prev && nonempty,
        has_next: has_next && nonempty,
    }
}

/// Where a row stands relative to a cursor position.
#[allow(clippy::too_many_arguments)]
fn against_position<'a, J: View<'a>>(
    row: usize,
    score: u32,
    relevance: bool,
    sort: &[SortBy<'_>],
    doc: J,
    ids: Option<&Column>,
    pos: &super::cursor::Position,
    pos_id: &Value,
) -> Ordering {
    let mut keys = pos.keys.iter();
    if relevance {
        let theirs = keys
            .next()
            .and_then(|k| k.as_ref())
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let c = theirs.cmp(&(score as u64));
        if c != Ordering::Equal {
            return c;
        }
    }
    for k in sort {
        let other = keys.next().and_then(|v| v.as_ref());
        let (c, desc) = match k {
            SortBy::Col(col, d) => (col.compare_to(row, other), *d),
            SortBy::Doc(p, d) => (compare(sort_value(doc, p), other), *d),
        };
        if c != Ordering::Equal {
            return if desc { c.reverse() } else { c };
        }
    }
    match ids {
        Some(c) => c.compare_to(row, Some(pos_id)),
        None => id_of(doc).cmp(pos.id.as_str()),
    }
}

/// A query's membership test for documents read one by one (a store that
/// streams items in an order its keys give, then runs the query over them).
pub struct Admit<'q> {
    q: &'q ListQuery,
    matcher: Option<super::search::Matcher<'q>>,
    fields: &'q [&'q str],
    sort: Vec<SortBy<'q>>,
}

impl<'q> Admit<'q> {
    pub fn new(q: &'q ListQuery, fields: &'q [&'q str]) -> Admit<'q> {
        Admit {
            q,
            matcher: q.search.as_ref().map(|s| s.matcher()),
            fields,
            sort: q
                .sort
                .iter()
                .map(|k| SortBy::Doc(&k.path, k.descending))
                .collect(),
        }
    }

    /// Does the document match the filter and the search?
    pub fn matches<'a, J: View<'a>>(&self, doc: J) -> bool {
        matches(doc, &self.q.filter)
            && self
                .matcher
                .as_ref()
                .is_none_or(|m| m.score(doc, self.fields).is_some())
    }

    /// Where the document stands against a position, in the query's order
    /// (without relevance).
    pub fn against<'a, J: View<'a>>(&self, doc: J, pos: &super::cursor::Position) -> Ordering {
        let pos_id = Value::String(pos.id.clone());
        against_position(0, 0, false, &self.sort, doc, None, pos, &pos_id)
    }
}

/// The cursor position of a document in a query's order.
pub fn position_of<'a, J: View<'a>>(
    doc: J,
    q: &ListQuery,
    search_fields: &[&str],
    before: bool,
) -> super::cursor::Position {
    let mut keys = Vec::new();
    if let Some(s) = q.search.as_ref().filter(|s| s.sort_by_relevance) {
        keys.push(Some(Value::from(
            s.matcher().score(doc, search_fields).unwrap_or(0),
        )));
    }
    for k in &q.sort {
        keys.push(sort_value(doc, &k.path).map(View::to_value));
    }
    super::cursor::Position {
        keys,
        id: id_of(doc).to_string(),
        before,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{Filter, ListQuery, Op, SortKey};
    use serde_json::json;

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(String::from).collect()
    }

    #[test]
    fn ne_and_nin_match_missing_fields() {
        let doc = json!({"a": 1});
        let f = |op| Filter::Field { path: p("b"), op };
        assert!(matches(&doc, &f(Op::Ne(json!(1)))));
        assert!(matches(&doc, &f(Op::Nin(vec![json!(1)]))));
        assert!(!matches(&doc, &f(Op::In(vec![json!(1)]))));
        assert!(!matches(&doc, &f(Op::Lt(json!(5)))));
        assert!(matches(&doc, &f(Op::Exists(false))));
    }

    #[test]
    fn arrays_match_any_element() {
        let doc = json!({"tags": ["a", "b"], "contacts": [{"name": "x"}, {"name": "y"}]});
        let eq = |path: &str, v| Filter::Field {
            path: p(path),
            op: Op::Eq(v),
        };
        assert!(matches(&doc, &eq("tags", json!("b"))));
        assert!(matches(&doc, &eq("contacts.name", json!("y"))));
        assert!(!matches(&doc, &eq("contacts.name", json!("z"))));
    }

    #[test]
    fn sorts_missing_first_and_stably() {
        let docs: Vec<std::sync::Arc<Value>> = [
            json!({"id": "1", "n": 2}),
            json!({"id": "2"}),
            json!({"id": "3", "n": 1}),
            json!({"id": "4", "n": 2}),
            json!({"id": "5", "n": "x"}),
        ]
        .into_iter()
        .map(std::sync::Arc::new)
        .collect();
        let mut q = ListQuery {
            limit: 10,
            ..Default::default()
        };
        q.sort = vec![SortKey {
            path: p("n"),
            descending: false,
        }];
        let index = Index::new(docs.clone());
        let r = run(&index, &q, &[]);
        let ids: Vec<_> = r
            .page
            .iter()
            .map(|d| d["id"].as_str().unwrap().parse::<i64>().unwrap())
            .collect();
        assert_eq!(ids, vec![2, 3, 1, 4, 5]);
        assert_eq!(r.total, 5);
        q.sort[0].descending = true;
        q.skip = 1;
        q.limit = 2;
        let index = Index::new(docs.clone());
        let r = run(&index, &q, &[]);
        let ids: Vec<_> = r
            .page
            .iter()
            .map(|d| d["id"].as_str().unwrap().parse::<i64>().unwrap())
            .collect();
        assert_eq!(ids, vec![1, 4]);
    }
}
