//! Value types of the domain and their validation rules.

pub mod countries;

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

/// An IANA time zone name known to the bundled tz database.
pub fn valid_time_zone(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && jiff::tz::db().get(s).is_ok()
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
    fn time_zones() {
        assert!(valid_time_zone("Europe/London"));
        assert!(valid_time_zone("America/New_York"));
        assert!(!valid_time_zone("Mars/Olympus"));
        assert!(!valid_time_zone(""));
    }
}
