//! Query strings as the `qs` library writes them: `a[b][c]=v`, `a[]=v`,
//! `a[0]=v`, repeated keys, percent-encoding. Bounded in size, depth and
//! parameter count so adversarial input costs little.

use crate::error::{ApiError, ApiResult};

pub const MAX_QUERY_BYTES: usize = 64 * 1024;
pub const MAX_PARAMS: usize = 1000;
pub const MAX_DEPTH: usize = 8;

/// A parsed value: repeated plain values, or an ordered map of children.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Leaf(Vec<String>),
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The entries of an array-like map (`[0]`, `[1]`, `[]`), in index order.
    pub fn as_indexed(&self) -> Option<Vec<&Node>> {
        match self {
            Node::Map(entries) => {
                let mut idx: Vec<(usize, &Node)> = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    idx.push((k.parse().ok()?, v));
                }
                idx.sort_by_key(|(i, _)| *i);
                Some(idx.into_iter().map(|(_, v)| v).collect())
            }
            Node::Leaf(_) => None,
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
pub fn decode(s: &str) -> ApiResult<String> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::invalid("The query string is not valid UTF-8."))
}

/// Split `a[b][]` into `["a", "b", ""]`.
fn split_key(key: &str) -> ApiResult<Vec<String>> {
    let (head, mut rest) = match key.find('[') {
        Some(0) => {
            return Err(ApiError::invalid(format!(
                "Malformed query parameter `{key}`."
            )))
        }
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    let mut segs = vec![head.to_string()];
    while !rest.is_empty() {
        let close = match (rest.starts_with('['), rest.find(']')) {
            (true, Some(c)) => c,
            _ => {
                return Err(ApiError::invalid(format!(
                    "Malformed query parameter `{key}`."
                )))
            }
        };
        segs.push(rest[1..close].to_string());
        rest = &rest[close + 1..];
        if segs.len() > MAX_DEPTH + 1 {
            return Err(ApiError::invalid(format!(
                "The query parameter `{}` nests deeper than {MAX_DEPTH} levels.",
                truncate(key)
            )));
        }
    }
    Ok(segs)
}

pub fn truncate(s: &str) -> String {
    if s.chars().count() <= 60 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(60).collect::<String>())
    }
}

fn insert(
    map: &mut Vec<(String, Node)>,
    segs: &[String],
    value: String,
    key: &str,
) -> ApiResult<()> {
    let (first, rest) = segs.split_first().expect("at least one segment");
    let name = if first.is_empty() {
        // `[]`: append at the next index.
        map.iter()
            .filter(|(k, _)| k.parse::<usize>().is_ok())
            .count()
            .to_string()
    } else {
        first.clone()
    };
    let pos = map.iter().position(|(k, _)| *k == name);
    if rest.is_empty() {
        match pos {
            None => map.push((name, Node::Leaf(vec![value]))),
            Some(p) => match &mut map[p].1 {
                Node::Leaf(vals) => vals.push(value),
                Node::Map(_) => return Err(mixed(key)),
            },
        }
        return Ok(());
    }
    let p = match pos {
        Some(p) => p,
        None => {
            map.push((name, Node::Map(Vec::new())));
            map.len() - 1
        }
    };
    match &mut map[p].1 {
        Node::Map(child) => insert(child, rest, value, key),
        Node::Leaf(_) => Err(mixed(key)),
    }
}

fn mixed(key: &str) -> ApiError {
    ApiError::invalid(format!(
        "The query parameter `{}` gives both a value and nested keys.",
        truncate(key)
    ))
}

/// Parse a raw query string (without `?`) into a tree.
pub fn parse(raw: &str) -> ApiResult<Vec<(String, Node)>> {
    if raw.len() > MAX_QUERY_BYTES {
        return Err(ApiError::invalid(format!(
            "The query string is longer than {MAX_QUERY_BYTES} bytes."
        )));
    }
    let mut root = Vec::new();
    for (n, pair) in raw.split('&').filter(|p| !p.is_empty()).enumerate() {
        if n >= MAX_PARAMS {
            return Err(ApiError::invalid(format!(
                "The query string has more than {MAX_PARAMS} parameters."
            )));
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(k)?;
        let value = decode(v)?;
        let segs = split_key(&key)?;
        insert(&mut root, &segs, value, &key)?;
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(v: &[&str]) -> Node {
        Node::Leaf(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn nests_and_repeats() {
        let t = parse("roomId[$in]=2&roomId[$in]=5&read=false").unwrap();
        assert_eq!(
            t,
            vec![
                (
                    "roomId".into(),
                    Node::Map(vec![("$in".into(), leaf(&["2", "5"]))])
                ),
                ("read".into(), leaf(&["false"])),
            ]
        );
    }

    #[test]
    fn arrays_in_every_format() {
        for q in [
            "a[$in][0]=1&a[$in][1]=2",
            "a[$in][]=1&a[$in][]=2",
            "a%5B%24in%5D%5B%5D=1&a%5B%24in%5D%5B%5D=2",
        ] {
            let t = parse(q).unwrap();
            let Node::Map(m) = &t[0].1 else { panic!("{q}") };
            let items = m[0].1.as_indexed().unwrap();
            assert_eq!(items, vec![&leaf(&["1"]), &leaf(&["2"])], "{q}");
        }
    }

    #[test]
    fn decodes_plus_and_percent() {
        assert_eq!(decode("a+b%20c%2").unwrap(), "a b c%2");
    }

    #[test]
    fn refuses_depth_and_mixing() {
        assert!(parse(&format!("a{}=1", "[x]".repeat(20))).is_err());
        assert!(parse("a=1&a[b]=2").is_err());
        assert!(parse("[a]=1").is_err());
        assert!(parse("a[b=1").is_err());
    }
}
