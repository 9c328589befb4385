//! The list query language (Feathers' syntax and the memory adapter's
//! semantics): qs tree → typed `ListQuery` (coerced by the resource schema)
//! → evaluation over documents. Both storage backends evaluate with this.

pub mod cursor;
pub mod eval;
pub mod index;
pub mod qs;
pub mod search;
pub mod view;

use crate::error::{ApiError, ApiResult};
use crate::schema::{path_type, Field, PathTy, Ty};
use qs::{truncate, Node};
use serde_json::Value;

pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 100;
pub const MAX_SKIP: usize = 1_000_000;
pub const MAX_LIST_VALUES: usize = 500;
pub const MAX_CLAUSES: usize = 200;

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Eq(Value),
    Ne(Value),
    Lt(Value),
    Lte(Value),
    Gt(Value),
    Gte(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exists(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Field { path: Vec<String>, op: Op },
}

impl Filter {
    pub fn all() -> Filter {
        Filter::And(Vec::new())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub path: Vec<String>,
    pub descending: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filter: Filter,
    pub sort: Vec<SortKey>,
    pub skip: usize,
    pub limit: usize,
    pub want_total: bool,
    pub select: Option<Vec<String>>,
    pub search: Option<search::Search>,
    /// Raw `$after` / `$before` cursors, checked by the API layer.
    pub after: Option<String>,
    pub before: Option<String>,
    /// The verified position a cursor points at.
    pub position: Option<cursor::Position>,
    /// The resource's text fields, which `$search` looks in.
    pub search_fields: &'static [&'static str],
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            filter: Filter::all(),
            sort: Vec::new(),
            skip: 0,
            limit: DEFAULT_LIMIT,
            want_total: false,
            select: None,
            search: None,
            after: None,
            before: None,
            position: None,
            search_fields: &[],
        }
    }
}

/// The schema a query is checked against: the common fields plus the resource's.
pub struct QuerySchema<'a> {
    pub field_sets: &'a [&'static [Field]],
    /// Fields `$search` looks in (none: `$search` is refused).
    pub search_fields: &'static [&'static str],
}

impl QuerySchema<'_> {
    fn lookup(&self, path: &[&str]) -> Option<PathTy<'static>> {
        self.field_sets.iter().find_map(|fs| path_type(fs, path))
    }

    /// "is not a field of this resource", naming the nearest one.
    fn unknown_field(&self, name: &str) -> ApiError {
        let known = self
            .field_sets
            .iter()
            .flat_map(|fs| fs.iter().map(|f| f.name));
        let parts: Vec<&str> = name.split('.').collect();
        let hint = if parts.len() > 1 {
            // A mistyped inner name: suggest within the object it is in.
            let outer = &parts[..parts.len() - 1];
            match self.lookup(outer) {
                Some(PathTy::Known(Ty::Object(fs))) => {
                    crate::domain::nearest(parts[parts.len() - 1], fs.iter().map(|f| f.name))
                        .map(|n| format!("{}.{n}", outer.join(".")))
                }
                _ => crate::domain::nearest(parts[0], known).map(String::from),
            }
        } else {
            crate::domain::nearest(name, known).map(String::from)
        };
        let msg = match hint {
            Some(h) => format!("is not a field of this resource; did you mean `{h}`?"),
            None => "is not a field of this resource".to_string(),
        };
        ApiError::field(truncate(name), msg)
    }

    fn top_level(&self, name: &str) -> bool {
        self.field_sets
            .iter()
            .any(|fs| fs.iter().any(|f| f.name == name))
    }
}

fn single<'n>(node: &'n Node, what: &str) -> ApiResult<&'n str> {
    match node {
        Node::Leaf(v) if v.len() == 1 => Ok(&v[0]),
        Node::Leaf(_) => Err(ApiError::field(what, "is given more than once")),
        Node::Map(_) => Err(ApiError::field(
            what,
            "must be a single value, not nested keys",
        )),
    }
}

fn parse_usize(node: &Node, what: &str, max: usize) -> ApiResult<usize> {
    let s = single(node, what)?;
    let n: usize = s.parse().map_err(|_| {
        ApiError::field(
            what,
            format!("must be a non-negative integer, got `{}`", truncate(s)),
        )
    })?;
    if n > max {
        return Err(ApiError::field(what, format!("must be at most {max}")));
    }
    Ok(n)
}

fn parse_bool(s: &str, what: &str) -> ApiResult<bool> {
    match s {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::field(
            what,
            format!("must be true or false, got `{}`", truncate(s)),
        )),
    }
}

/// The values of `$in`/`$nin`/`$select`: repeated, indexed, or given once.
fn list_values<'n>(node: &'n Node, what: &str) -> ApiResult<Vec<&'n str>> {
    let vals: Vec<&str> = match node {
        Node::Leaf(v) => v.iter().map(String::as_str).collect(),
        Node::Map(_) => {
            let items = node
                .as_indexed()
                .ok_or_else(|| ApiError::field(what, "must be a list of values"))?;
            items
                .into_iter()
                .map(|n| single(n, what))
                .collect::<ApiResult<_>>()?
        }
    };
    if vals.len() > MAX_LIST_VALUES {
        return Err(ApiError::field(
            what,
            format!("lists at most {MAX_LIST_VALUES} values"),
        ));
    }
    Ok(vals)
}

/// Coerce a query string value by the type of the field it is compared with.
fn coerce(ty: PathTy<'_>, raw: &str, field: &str) -> ApiResult<Value> {
    let bad =
        |expect: &str| ApiError::field(field, format!("expects {expect}, got `{}`", truncate(raw)));
    let ty = match ty {
        PathTy::Free => return Ok(Value::String(raw.to_string())),
        PathTy::Known(t) => t,
    };
    Ok(match ty {
        Ty::Int { .. } => Value::from(raw.parse::<i64>().map_err(|_| bad("an integer"))?),
        Ty::Number { .. } => raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| bad("a number"))?,
        Ty::Bool => Value::Bool(parse_bool(raw, field).map_err(|_| bad("true or false"))?),
        Ty::Timestamp => Value::String(
            crate::time::normalize_timestamp(raw)
                .ok_or_else(|| bad("an RFC 3339 timestamp or Unix milliseconds"))?,
        ),
        Ty::Date => {
            crate::time::parse_date(raw).ok_or_else(|| bad("a date YYYY-MM-DD"))?;
            Value::String(raw.to_string())
        }
        Ty::Enum(values) => {
            if !values.contains(&raw) {
                return Err(bad(&format!("one of {}", values.join(", "))));
            }
            Value::String(raw.to_string())
        }
        Ty::Array(inner, _) => return coerce(PathTy::Known(inner), raw, field),
        Ty::Object(_) | Ty::Metadata | Ty::Json => {
            return Err(ApiError::field(
                field,
                "is an object: filter on one of its fields with a dotted path",
            ))
        }
        _ => Value::String(raw.to_string()),
    })
}

/// The operators a field condition takes.
pub const OPERATORS: &[&str] = &[
    "$in", "$nin", "$lt", "$lte", "$gt", "$gte", "$ne", "$exists",
];

fn unknown_operator(op: &str) -> String {
    let op = truncate(op);
    let lower = op.to_ascii_lowercase();
    let hint = if [
        "$regex",
        "$like",
        "$ilike",
        "$contains",
        "$text",
        "$match",
        "$search",
    ]
    .contains(&lower.as_str())
    {
        " To match words in text fields, use `$search=…` on the list (stems, \"phrases\", -exclusions).".to_string()
    } else {
        crate::domain::nearest(&op, OPERATORS.iter().copied())
            .map(|n| format!(" Did you mean `{n}`?"))
            .unwrap_or_default()
    };
    format!(
        "`{op}` is not a query operator; the operators are {} (and `$or`/`$and` around conditions).{hint}",
        OPERATORS
            .iter()
            .map(|o| format!("`{o}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

struct Ctx<'a> {
    schema: &'a QuerySchema<'a>,
    clauses: usize,
}

impl Ctx<'_> {
    fn field_clause(&mut self, name: &str, node: &Node, out: &mut Vec<Filter>) -> ApiResult<()> {
        let parts: Vec<&str> = name.split('.').collect();
        if parts.iter().any(|p| p.is_empty() || p.starts_with('$')) {
            return Err(ApiError::field(truncate(name), "is not a valid field path"));
        }
        let ty = self
            .schema
            .lookup(&parts)
            .ok_or_else(|| self.schema.unknown_field(name))?;
        let path: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
        let mut push = |op: Op, ctx: &mut Self| -> ApiResult<()> {
            ctx.clauses += 1;
            if ctx.clauses > MAX_CLAUSES {
                return Err(ApiError::invalid(format!(
                    "The query has more than {MAX_CLAUSES} conditions."
                )));
            }
            out.push(Filter::Field {
                path: path.clone(),
                op,
            });
            Ok(())
        };
        match node {
            Node::Leaf(v) if v.len() == 1 => push(Op::Eq(coerce(ty, &v[0], name)?), self),
            Node::Leaf(_) => Err(ApiError::field(
                truncate(name),
                "is given more than once; use `[$in]` to match any of several values",
            )),
            Node::Map(ops) => {
                for (op, arg) in ops {
                    let what = format!("{}[{}]", truncate(name), truncate(op));
                    let one = || -> ApiResult<Value> { coerce(ty, single(arg, &what)?, name) };
                    let op = match op.as_str() {
                        "$ne" => Op::Ne(one()?),
                        "$lt" => Op::Lt(one()?),
                        "$lte" => Op::Lte(one()?),
                        "$gt" => Op::Gt(one()?),
                        "$gte" => Op::Gte(one()?),
                        "$in" | "$nin" => {
                            let vals = list_values(arg, &what)?
                                .into_iter()
                                .map(|v| coerce(ty, v, name))
                                .collect::<ApiResult<Vec<_>>>()?;
                            if op == "$in" {
                                Op::In(vals)
                            } else {
                                Op::Nin(vals)
                            }
                        }
                        "$exists" => Op::Exists(parse_bool(single(arg, &what)?, &what)?),
                        other if other.starts_with('$') => {
                            return Err(ApiError::field(what, unknown_operator(other)))
                        }
                        _ => {
                            return Err(ApiError::field(
                                what,
                                "nested keys are not supported here; use a dotted path such as `address.city`",
                            ))
                        }
                    };
                    push(op, self)?;
                }
                Ok(())
            }
        }
    }

    /// A filter object: field clauses plus `$or`/`$and`.
    fn filter(
        &mut self,
        entries: &[(String, Node)],
        depth: usize,
        top: bool,
    ) -> ApiResult<Vec<Filter>> {
        if depth > qs::MAX_DEPTH {
            return Err(ApiError::invalid(format!(
                "The query nests deeper than {} levels.",
                qs::MAX_DEPTH
            )));
        }
        let mut out = Vec::new();
        for (key, node) in entries {
            match key.as_str() {
                "$or" | "$and" => {
                    let items = node.as_indexed().ok_or_else(|| {
                        ApiError::field(key, "must be a list such as `$or[0][field]=value`")
                    })?;
                    let mut subs = Vec::with_capacity(items.len());
                    for item in items {
                        let Node::Map(sub) = item else {
                            return Err(ApiError::field(
                                key,
                                "each entry must hold field conditions",
                            ));
                        };
                        subs.push(Filter::And(self.filter(sub, depth + 1, false)?));
                    }
                    out.push(if key == "$or" {
                        Filter::Or(subs)
                    } else {
                        Filter::And(subs)
                    });
                }
                k if k.starts_with('$') => {
                    let msg = if top {
                        let params = [
                            "$limit", "$skip", "$sort", "$select", "$total", "$search", "$after",
                            "$before", "$or", "$and",
                        ];
                        let hint = if OPERATORS.contains(&k) {
                            format!(
                                " `{k}` is an operator: put it after a field, e.g. `age[{k}]=…`."
                            )
                        } else if ["$regex", "$like", "$ilike", "$contains", "$text"].contains(&k) {
                            " To match words in text fields, use `$search=…`.".to_string()
                        } else {
                            crate::domain::nearest(k, params.iter().copied())
                                .map(|n| format!(" Did you mean `{n}`?"))
                                .unwrap_or_default()
                        };
                        format!(
                            "`{}` is not a query parameter; they are {}.{hint}",
                            truncate(k),
                            params.join(", ")
                        )
                    } else {
                        format!("`{}` is not allowed inside `$or`/`$and`", truncate(k))
                    };
                    return Err(ApiError::field(truncate(k), msg));
                }
                name => self.field_clause(name, node, &mut out)?,
            }
        }
        Ok(out)
    }
}

/// Parse a list (or, with `get_only`, a get) query string.
pub fn parse(raw: &str, schema: &QuerySchema<'_>) -> ApiResult<ListQuery> {
    let tree = qs::parse(raw)?;
    let mut q = ListQuery {
        search_fields: schema.search_fields,
        ..ListQuery::default()
    };
    let mut filter_entries = Vec::new();
    let mut limit_given = false;
    for (key, node) in &tree {
        match key.as_str() {
            "$limit" => {
                let n = parse_usize(node, "$limit", usize::MAX / 2).map_err(|_| {
                    ApiError::field(
                        "$limit",
                        "must be a non-negative integer (at most 100 are returned)",
                    )
                })?;
                q.limit = n.min(MAX_LIMIT);
                limit_given = true;
            }
            "$skip" => q.skip = parse_usize(node, "$skip", MAX_SKIP)?,
            "$total" => q.want_total = parse_bool(single(node, "$total")?, "$total")?,
            "$sort" => {
                let Node::Map(keys) = node else {
                    return Err(ApiError::field(
                        "$sort",
                        "must name fields, e.g. `$sort[createdAt]=-1`",
                    ));
                };
                for (field, dir) in keys {
                    let parts: Vec<&str> = field.split('.').collect();
                    if schema.lookup(&parts).is_none() {
                        let e = schema.unknown_field(field);
                        return Err(ApiError::field(
                            format!("$sort[{}]", truncate(field)),
                            e.errors
                                .first()
                                .map(|e| e.message.clone())
                                .unwrap_or_default(),
                        ));
                    }
                    let what = format!("$sort[{}]", truncate(field));
                    let descending = match single(dir, &what)? {
                        "1" | "asc" | "ascending" => false,
                        "-1" | "desc" | "descending" => true,
                        other => {
                            return Err(ApiError::field(
                                what,
                                format!("must be 1 or -1, got `{}`", truncate(other)),
                            ))
                        }
                    };
                    q.sort.push(SortKey {
                        path: parts.iter().map(|s| s.to_string()).collect(),
                        descending,
                    });
                }
            }
            "$select" => q.select = Some(parse_select(node, schema)?),
            "$search" => {
                if schema.search_fields.is_empty() {
                    return Err(ApiError::field(
                        "$search",
                        "this list has no text fields to search",
                    ));
                }
                q.search = Some(search::Search::parse(node)?);
            }
            "$after" => q.after = Some(single(node, "$after")?.to_string()),
            "$before" => q.before = Some(single(node, "$before")?.to_string()),
            _ => filter_entries.push((key.clone(), node.clone())),
        }
    }
    if q.after.is_some() && q.before.is_some() {
        return Err(ApiError::invalid("Give `$after` or `$before`, not both."));
    }
    if limit_given && q.limit == 0 {
        q.want_total = true;
    }
    let mut ctx = Ctx { schema, clauses: 0 };
    q.filter = Filter::And(ctx.filter(&filter_entries, 0, true)?);
    Ok(q)
}

fn parse_select(node: &Node, schema: &QuerySchema<'_>) -> ApiResult<Vec<String>> {
    let fields = list_values(node, "$select")?;
    let mut out = Vec::with_capacity(fields.len() + 1);
    for f in fields {
        if !schema.top_level(f) {
            return Err(ApiError::field(
                format!("$select[{}]", truncate(f)),
                "is not a field of this resource",
            ));
        }
        out.push(f.to_string());
    }
    Ok(out)
}

/// A get route accepts only `$select`.
pub fn parse_get(raw: &str, schema: &QuerySchema<'_>) -> ApiResult<Option<Vec<String>>> {
    let tree = qs::parse(raw)?;
    let mut select = None;
    for (key, node) in &tree {
        if key == "$select" {
            select = Some(parse_select(node, schema)?);
        } else {
            return Err(ApiError::field(
                truncate(key),
                "is not accepted here; a get takes only `$select`",
            ));
        }
    }
    Ok(select)
}

/// Keep only the selected top-level fields (and always `id`).
pub fn project(doc: &Value, select: &[String]) -> Value {
    let mut out = serde_json::Map::new();
    if let Value::Object(map) = doc {
        if let Some(id) = map.get("id") {
            out.insert("id".into(), id.clone());
        }
        for f in select {
            if let Some(v) = map.get(f) {
                out.insert(f.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}
