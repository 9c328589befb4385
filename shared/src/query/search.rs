//! `$search`: full-text search over a resource's declared text fields, as
//! the first reference document describes it. Terms match by word stem
//! (Snowball; English unless `language` says otherwise), any term may
//! match; "quoted phrases" must all appear; `-term` excludes. Options:
//! `caseSensitive`, `diacriticSensitive`, `language` (also drops that
//! language's stop words from the terms), `sortByRelevance`.

use super::qs::{truncate, Node};
use crate::error::{ApiError, ApiResult};
use rust_stemmers::{Algorithm, Stemmer};
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

pub const MAX_SEARCH_CHARS: usize = 500;
pub const MAX_SEARCH_TERMS: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    /// Stems of the terms (any may match).
    pub terms: Vec<String>,
    /// Phrases as normalised word sequences (all must appear).
    pub phrases: Vec<Vec<String>>,
    /// Stems of excluded terms (none may appear).
    pub excluded: Vec<String>,
    pub case_sensitive: bool,
    pub diacritic_sensitive: bool,
    pub language: String,
    pub sort_by_relevance: bool,
}

fn algorithm(lang: &str) -> Option<Algorithm> {
    Some(match lang {
        "ar" => Algorithm::Arabic,
        "da" => Algorithm::Danish,
        "nl" => Algorithm::Dutch,
        "en" => Algorithm::English,
        "fi" => Algorithm::Finnish,
        "fr" => Algorithm::French,
        "de" => Algorithm::German,
        "el" => Algorithm::Greek,
        "hu" => Algorithm::Hungarian,
        "it" => Algorithm::Italian,
        "no" | "nb" => Algorithm::Norwegian,
        "pt" => Algorithm::Portuguese,
        "ro" => Algorithm::Romanian,
        "ru" => Algorithm::Russian,
        "es" => Algorithm::Spanish,
        "sv" => Algorithm::Swedish,
        "ta" => Algorithm::Tamil,
        "tr" => Algorithm::Turkish,
        _ => return None,
    })
}

/// Case and diacritic folding as the options ask.
fn normalize(word: &str, case_sensitive: bool, diacritic_sensitive: bool) -> String {
    let w: String = if diacritic_sensitive {
        word.to_string()
    } else {
        word.nfd()
            .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
            .collect()
    };
    if case_sensitive {
        w
    } else {
        w.to_lowercase()
    }
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// A stem that keeps the word's own case where it is case-sensitive.
fn stem(stemmer: &Stemmer, word: &str, case_sensitive: bool) -> String {
    if !case_sensitive {
        return stemmer.stem(word).into_owned();
    }
    let lower = word.to_lowercase();
    let s = stemmer.stem(&lower);
    // Re-apply the original case to the stem's characters.
    word.chars()
        .zip(s.chars())
        .map(|(o, l)| {
            if o.to_lowercase().eq(std::iter::once(l)) {
                o
            } else {
                l
            }
        })
        .collect()
}

impl Search {
    pub fn parse(node: &Node) -> ApiResult<Search> {
        let field = |m: &[(String, Node)], names: &[&str]| -> ApiResult<Option<String>> {
            for (k, v) in m {
                if names.contains(&k.as_str()) {
                    return match v {
                        Node::Leaf(vals) if vals.len() == 1 => Ok(Some(vals[0].clone())),
                        _ => Err(ApiError::field(
                            format!("$search[{k}]"),
                            "must be a single value",
                        )),
                    };
                }
            }
            Ok(None)
        };
        let flag = |v: Option<String>, name: &str| -> ApiResult<bool> {
            match v.as_deref() {
                None | Some("false") | Some("0") | Some("null") | Some("") => Ok(false),
                Some("true") | Some("1") => Ok(true),
                Some(other) => Err(ApiError::field(
                    format!("$search[{name}]"),
                    format!("must be true or false, got `{}`", truncate(other)),
                )),
            }
        };
        let (text, case, diacritic, language, relevance) = match node {
            Node::Leaf(vals) if vals.len() == 1 => (vals[0].clone(), false, false, None, false),
            Node::Leaf(_) => return Err(ApiError::field("$search", "is given more than once")),
            Node::Map(m) => {
                for (k, _) in m {
                    if ![
                        "text",
                        "caseSensitive",
                        "caseSensistive",
                        "diacriticSensitive",
                        "language",
                        "sortByRelevance",
                    ]
                    .contains(&k.as_str())
                    {
                        return Err(ApiError::field(format!("$search[{}]", truncate(k)), "is not a search option; use text, caseSensitive, diacriticSensitive, language or sortByRelevance"));
                    }
                }
                (
                    field(m, &["text"])?
                        .ok_or_else(|| ApiError::field("$search[text]", "is required"))?,
                    flag(
                        field(m, &["caseSensitive", "caseSensistive"])?,
                        "caseSensitive",
                    )?,
                    flag(field(m, &["diacriticSensitive"])?, "diacriticSensitive")?,
                    field(m, &["language"])?.filter(|l| !l.is_empty() && l != "null"),
                    flag(field(m, &["sortByRelevance"])?, "sortByRelevance")?,
                )
            }
        };
        if text.chars().count() > MAX_SEARCH_CHARS {
            return Err(ApiError::field(
                "$search",
                format!("must be at most {MAX_SEARCH_CHARS} characters"),
            ));
        }
        let lang = language.clone().unwrap_or_else(|| "en".into());
        let algo = algorithm(&lang).ok_or_else(|| {
            ApiError::field(
                "$search[language]",
                format!(
                    "`{}` is not a supported language (ISO 639-1, e.g. en, da, nl, ru, es, fr, de)",
                    truncate(&lang)
                ),
            )
        })?;
        let stemmer = Stemmer::create(algo);
        let stop: &[&str] = match &language {
            Some(l) => stop_words::lookup(l).unwrap_or(&[]),
            None => &[],
        };
        let mut s = Search {
            terms: vec![],
            phrases: vec![],
            excluded: vec![],
            case_sensitive: case,
            diacritic_sensitive: diacritic,
            language: lang,
            sort_by_relevance: relevance,
        };
        // Split out "quoted phrases" first; the rest is terms.
        let mut rest = String::new();
        for (i, part) in text.split('"').enumerate() {
            if i % 2 == 1 {
                let p: Vec<String> = words(part).map(|w| normalize(w, case, diacritic)).collect();
                if !p.is_empty() {
                    s.phrases.push(p);
                }
            } else {
                rest.push(' ');
                rest.push_str(part);
            }
        }
        for token in rest.split_whitespace() {
            let (neg, token) = match token.strip_prefix('-') {
                Some(t) => (true, t),
                None => (false, token),
            };
            for w in words(token) {
                let n = normalize(w, case, diacritic);
                if !neg && stop.contains(&n.to_lowercase().as_str()) {
                    continue;
                }
                let st = stem(&stemmer, &n, case);
                if neg {
                    s.excluded.push(st)
                } else {
                    s.terms.push(st)
                }
            }
        }
        if s.terms.len() + s.excluded.len() + s.phrases.len() > MAX_SEARCH_TERMS {
            return Err(ApiError::field(
                "$search",
                format!("has more than {MAX_SEARCH_TERMS} terms and phrases"),
            ));
        }
        Ok(s)
    }

    /// Prepare the per-document matcher (builds the stemmer once).
    pub fn matcher(&self) -> Matcher<'_> {
        Matcher {
            search: self,
            stemmer: Stemmer::create(algorithm(&self.language).unwrap_or(Algorithm::English)),
        }
    }
}

pub struct Matcher<'a> {
    search: &'a Search,
    stemmer: Stemmer,
}

fn collect_text<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| collect_text(i, out)),
        Value::Object(m) => m.values().for_each(|i| collect_text(i, out)),
        _ => {}
    }
}

impl Matcher<'_> {
    /// `None` when the document does not match; else its relevance score.
    pub fn score(&self, doc: &Value, fields: &[&str]) -> Option<u32> {
        let s = self.search;
        let mut texts = Vec::new();
        for f in fields {
            if let Some(v) = doc.get(*f) {
                collect_text(v, &mut texts);
            }
        }
        let mut tokens: Vec<String> = Vec::new();
        let mut boundaries = Vec::new();
        for t in texts {
            tokens.extend(words(t).map(|w| normalize(w, s.case_sensitive, s.diacritic_sensitive)));
            boundaries.push(tokens.len());
        }
        let stems: Vec<String> = tokens
            .iter()
            .map(|t| stem(&self.stemmer, t, s.case_sensitive))
            .collect();
        if s.excluded.iter().any(|e| stems.contains(e)) {
            return None;
        }
        let mut score = 0u32;
        for p in &s.phrases {
            // Consecutive words within one field's text.
            let mut found = 0u32;
            let mut start = 0;
            for &end in &boundaries {
                let slice = &tokens[start..end];
                if slice.len() >= p.len() {
                    found += slice
                        .windows(p.len())
                        .filter(|w| w == &p.as_slice())
                        .count() as u32;
                }
                start = end;
            }
            if found == 0 {
                return None;
            }
            score += 2 * found;
        }
        let term_hits: u32 = s
            .terms
            .iter()
            .map(|t| stems.iter().filter(|x| *x == t).count() as u32)
            .sum();
        if s.phrases.is_empty() && !s.terms.is_empty() && term_hits == 0 {
            return None;
        }
        Some(score + term_hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn search(q: &str) -> Search {
        Search::parse(&Node::Leaf(vec![q.into()])).unwrap()
    }

    fn hit(s: &Search, text: &str) -> bool {
        s.matcher().score(&json!({"t": text}), &["t"]).is_some()
    }

    #[test]
    fn stems_phrases_and_exclusions() {
        assert!(hit(&search("cat"), "Two cats sat"));
        assert!(hit(&search("running"), "she runs daily"));
        assert!(!hit(&search("dog"), "Two cats sat"));
        assert!(hit(&search("java shop"), "a coffee shop"));
        assert!(!hit(&search("java shop -coffee"), "a coffee shop"));
        assert!(hit(
            &search("\"coffee shop\""),
            "The Coffee Shop on the corner"
        ));
        assert!(!hit(&search("\"coffee shop\""), "shop for coffee"));
        assert!(!hit(&search("\"coffee shop\" java"), "java only"));
    }

    #[test]
    fn case_and_diacritics() {
        assert!(hit(&search("zoe"), "Zoë Smith"));
        let strict = Search::parse(&Node::Map(vec![
            ("text".into(), Node::Leaf(vec!["zoe".into()])),
            ("diacriticSensitive".into(), Node::Leaf(vec!["true".into()])),
        ]))
        .unwrap();
        assert!(!hit(&strict, "Zoë Smith"));
        let cs = Search::parse(&Node::Map(vec![
            ("text".into(), Node::Leaf(vec!["Smith".into()])),
            ("caseSensitive".into(), Node::Leaf(vec!["true".into()])),
        ]))
        .unwrap();
        assert!(hit(&cs, "Ann Smith"));
        assert!(!hit(&cs, "ann smith"));
    }

    #[test]
    fn stop_words_only_with_a_language() {
        let en = Search::parse(&Node::Map(vec![
            ("text".into(), Node::Leaf(vec!["the cat".into()])),
            ("language".into(), Node::Leaf(vec!["en".into()])),
        ]))
        .unwrap();
        assert_eq!(en.terms, vec!["cat".to_string()]);
        assert!(Search::parse(&Node::Map(vec![
            ("text".into(), Node::Leaf(vec!["x".into()])),
            ("language".into(), Node::Leaf(vec!["klingon".into()])),
        ]))
        .is_err());
    }

    #[test]
    fn relevance_counts_hits() {
        let s = search("hearing aid");
        let m = s.matcher();
        let a = m
            .score(&json!({"t": "hearing aid hearing"}), &["t"])
            .unwrap();
        let b = m.score(&json!({"t": "hearing test"}), &["t"]).unwrap();
        assert!(a > b);
    }
}
