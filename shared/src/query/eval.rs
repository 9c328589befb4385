//! Evaluation with the semantics of Feathers' memory adapter: sift-style
//! matching (a condition on an array matches any element; `$ne`/`$nin`
//! match a missing field) and adapter-commons' sorter (missing first when
//! ascending, then numbers, strings, booleans; stable, so creation order
//! breaks ties). Order of work: filter, stable sort, skip, limit.

use super::{Filter, ListQuery, Op, SortKey};
use serde_json::Value;
use std::cmp::Ordering;

/// Does any value a dotted path reaches satisfy `pred`? Looks through
/// arrays like sift does: the array itself and each element count.
fn any_at(v: &Value, path: &[String], pred: &mut dyn FnMut(&Value) -> bool) -> bool {
    match path.split_first() {
        None => match v {
            Value::Array(items) => pred(v) || items.iter().any(&mut *pred),
            _ => pred(v),
        },
        Some((head, rest)) => match v {
            Value::Object(m) => m
                .get(head.as_str())
                .is_some_and(|child| any_at(child, rest, pred)),
            Value::Array(items) => items.iter().any(|item| any_at(item, path, pred)),
            _ => false,
        },
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn ordered(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn field_matches(doc: &Value, path: &[String], op: &Op) -> bool {
    let any = |pred: &mut dyn FnMut(&Value) -> bool| any_at(doc, path, pred);
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

pub fn matches(doc: &Value, filter: &Filter) -> bool {
    match filter {
        Filter::And(fs) => fs.iter().all(|f| matches(doc, f)),
        Filter::Or(fs) => fs.iter().any(|f| matches(doc, f)),
        Filter::Field { path, op } => field_matches(doc, path, op),
    }
}

/// The value a sort key reads: plain object traversal (no array mapping).
fn sort_value<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = doc;
    for seg in path {
        cur = cur.as_object()?.get(seg.as_str())?;
    }
    match cur {
        Value::Null => None,
        v => Some(v),
    }
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Number(_) => 1,
        Value::String(_) => 2,
        Value::Bool(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// adapter-commons `compare`: missing/null < numbers < strings < booleans < arrays < objects.
pub fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => match rank(x).cmp(&rank(y)) {
            Ordering::Equal => match (x, y) {
                (Value::Array(p), Value::Array(q)) => {
                    for (i, j) in p.iter().zip(q) {
                        let c = compare(Some(i), Some(j));
                        if c != Ordering::Equal {
                            return c;
                        }
                    }
                    p.len().cmp(&q.len())
                }
                (Value::Object(p), Value::Object(q)) => {
                    // adapter-commons: values at the i-th sorted key of each, then key count.
                    let mut pk: Vec<&String> = p.keys().collect();
                    let mut qk: Vec<&String> = q.keys().collect();
                    pk.sort();
                    qk.sort();
                    for (i, j) in pk.iter().zip(&qk) {
                        let c = compare(p.get(i.as_str()), q.get(j.as_str()));
                        if c != Ordering::Equal {
                            return c;
                        }
                    }
                    pk.len().cmp(&qk.len())
                }
                _ => ordered(x, y).unwrap_or(Ordering::Equal),
            },
            other => other,
        },
    }
}

fn compare_docs(a: &Value, b: &Value, keys: &[SortKey]) -> Ordering {
    for k in keys {
        let c = compare(sort_value(a, &k.path), sort_value(b, &k.path));
        if c != Ordering::Equal {
            return if k.descending { c.reverse() } else { c };
        }
    }
    Ordering::Equal
}

/// Run a query over documents given in creation order. Returns the page and
/// the number of matches.
pub fn run<'a, T, I>(docs: I, q: &ListQuery) -> (Vec<&'a T>, usize)
where
    T: AsRef<Value> + 'a,
    I: IntoIterator<Item = &'a T>,
{
    let mut hits: Vec<(usize, &'a T)> = docs
        .into_iter()
        .filter(|d| matches(d.as_ref(), &q.filter))
        .enumerate()
        .collect();
    let total = hits.len();
    let end = q.skip.saturating_add(q.limit).min(total);
    if q.skip >= total || q.limit == 0 {
        return (Vec::new(), total);
    }
    if !q.sort.is_empty() {
        // Creation index breaks ties, which makes an unstable partial sort stable.
        let cmp = |x: &(usize, &T), y: &(usize, &T)| {
            compare_docs(x.1.as_ref(), y.1.as_ref(), &q.sort).then(x.0.cmp(&y.0))
        };
        if end < hits.len() {
            hits.select_nth_unstable_by(end, cmp);
            hits.truncate(end);
        }
        hits.sort_unstable_by(cmp);
    }
    let page = hits[q.skip..end].iter().map(|(_, d)| *d).collect();
    (page, total)
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
            json!({"id": 1, "n": 2}),
            json!({"id": 2}),
            json!({"id": 3, "n": 1}),
            json!({"id": 4, "n": 2}),
            json!({"id": 5, "n": "x"}),
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
        let (page, total) = run(docs.iter(), &q);
        let ids: Vec<_> = page.iter().map(|d| d["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, vec![2, 3, 1, 4, 5]);
        assert_eq!(total, 5);
        q.sort[0].descending = true;
        q.skip = 1;
        q.limit = 2;
        let (page, _) = run(docs.iter(), &q);
        let ids: Vec<_> = page.iter().map(|d| d["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, vec![1, 4]);
    }
}
