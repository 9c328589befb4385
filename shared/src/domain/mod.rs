//! Value types of the domain and their validation rules.

pub mod countries;
pub mod currencies;

/// A plausible email address: one `@`, a non-empty local part, a dotted
/// domain of letters, digits and hyphens, no spaces, at most 254 characters.
pub fn valid_email(s: &str) -> bool {
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    if local.is_empty()
        || local.len() > 64
        || local.contains('@')
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && !tld.chars().all(|c| c.is_ascii_digit()))
}

/// E.164 (`+447700900123`) or national digits (`07700 900123`); spaces,
/// hyphens, dots and parentheses are allowed as separators.
pub fn valid_phone(s: &str) -> bool {
    let (plus, rest) = match s.trim().strip_prefix('+') {
        Some(r) => (true, r),
        None => (false, s.trim()),
    };
    let mut digits = 0;
    for c in rest.chars() {
        match c {
            '0'..='9' => digits += 1,
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return false,
        }
    }
    let first = rest.chars().find(|c| c.is_ascii_digit());
    if plus {
        (8..=15).contains(&digits) && first != Some('0')
    } else {
        (6..=15).contains(&digits)
    }
}

/// The parts of an absolute http(s) URL that delivery needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Parse `http(s)://host[:port][/path][?query]`: no user info, no fragment,
/// at most 2048 characters, a host of letters, digits, dots and hyphens or
/// an IP literal.
pub fn parse_url(s: &str) -> Option<Url> {
    if s.len() > 2048 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (https, rest) = if let Some(r) = s.strip_prefix("https://") {
        (true, r)
    } else {
        (false, s.strip_prefix("http://")?)
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') || tail.contains('#') || authority.is_empty() {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        h.parse::<std::net::Ipv6Addr>().ok()?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0)?,
        None if https => 443,
        None => 80,
    };
    let host_ok = host.parse::<std::net::IpAddr>().is_ok()
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }));
    if !host_ok {
        return None;
    }
    let path = if tail.is_empty() {
        "/".to_string()
    } else if tail.starts_with('?') {
        format!("/{tail}")
    } else {
        tail.to_string()
    };
    Some(Url {
        https,
        host: host.to_ascii_lowercase(),
        port,
        path,
    })
}

/// An IANA time zone name known to the bundled tz database.
pub fn valid_time_zone(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && jiff::tz::db().get(s).is_ok()
}

/// `HH:MM` on a 24-hour clock, `24:00` allowed as an end of day: the minute
/// of the day it names.
pub fn parse_local_time(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// The largest integer a JavaScript client holds exactly (2^53 − 1): the
/// bound of every amount of money.
pub const MAX_SAFE_INTEGER: i64 = 9_007_199_254_740_991;

/// The nearest of `candidates` to a mistyped `name`: the same ignoring case,
/// or at most two edits away.
pub fn nearest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = if c.to_lowercase() == lower {
            0
        } else {
            edit_distance(&lower, &c.to_lowercase())
        };
        let limit = if c.chars().count() <= 3 { 1 } else { 2 };
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > 2 || a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in [
            "john@example.com",
            "a.b+c@mail.example.co.uk",
            "zoë@exämple.de",
        ] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "",
            "john",
            "john@",
            "@example.com",
            "john@example",
            "jo hn@example.com",
            "john@exa_mple.com",
            "john@example.123",
            "a..b@example.com",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn phones() {
        for ok in [
            "+447700900123",
            "07123456789",
            "07700 900123",
            "(020) 7946-0958",
        ] {
            assert!(valid_phone(ok), "{ok}");
        }
        for bad in [
            "",
            "12345",
            "+0123456789",
            "0771234abc",
            "+1234567890123456",
            "call me",
        ] {
            assert!(!valid_phone(bad), "{bad}");
        }
    }

    #[test]
    fn urls() {
        let u = parse_url("https://hooks.example.com/in?x=1").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path.as_str()),
            (true, "hooks.example.com", 443, "/in?x=1")
        );
        let u = parse_url("http://127.0.0.1:8080").unwrap();
        assert_eq!((u.port, u.path.as_str()), (8080, "/"));
        assert_eq!(parse_url("http://[::1]:9000/x").unwrap().host, "::1");
        for bad in [
            "ftp://x.com",
            "https://",
            "https://user:pw@x.com/",
            "https://x.com/#f",
            "https://x .com",
            "https://x.com:0/",
            "https://x.com:99999/",
            "example.com",
        ] {
            assert!(parse_url(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn time_zones() {
        assert!(valid_time_zone("Europe/London"));
        assert!(valid_time_zone("America/New_York"));
        assert!(!valid_time_zone("Mars/Olympus"));
        assert!(!valid_time_zone(""));
    }
}
