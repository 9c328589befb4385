//! `$search`: full-text search over a resource's declared text fields, as
//! the first reference document describes it. Terms match by word stem
//! (Snowball; English unless `language` says otherwise), any term may
//! match; "quoted phrases" must all appear; `-term` excludes. Options:
//! `caseSensitive`, `diacriticSensitive`, `language` (also drops that
//! language's stop words from the terms), `sortByRelevance`.

use super::qs::{truncate, Node};
use super::view::{Scalar, View};
use crate::error::{ApiError, ApiResult};
use rust_stemmers::{Algorithm, Stemmer};
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

pub const MAX_SEARCH_CHARS: usize = 500;
pub const MAX_SEARCH_TERMS: usize = 32;
/// Distinct stems one object may index (DynamoDB: one item each, written in
/// the object's transaction of at most 100 items). Fields are indexed
/// shortest first, so names and addresses come before long notes.
pub const MAX_INDEX_STEMS: usize = 24;
/// Longer stems are not indexed (a search for one reads no postings).
pub const MAX_STEM_BYTES: usize = 200;

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
    /// The terms in the index's form (default options: folded, English
    /// stem), `None` where one cannot be indexed.
    pub index_terms: Option<Vec<String>>,
    /// Every phrase word in the index's form (those too long left out).
    pub index_phrases: Vec<String>,
}

/// What an inverted index reads for a search: the postings of any of these
/// stems (terms), or of all of them (phrase words: the rarest is enough).
#[derive(Debug, Clone, PartialEq)]
pub enum Postings {
    Any(Vec<String>),
    All(Vec<String>),
}

/// The form a word is indexed in: case and diacritics folded, English stem.
pub fn index_stem(stemmer: &Stemmer, word: &str) -> String {
    stemmer.stem(&normalize(word, false, false)).into_owned()
}

/// The distinct stems an object indexes: its text fields' words in the
/// index's form, shortest field first, at most `MAX_INDEX_STEMS`.
pub fn index_stems(doc: &Value, fields: &[&str]) -> Vec<String> {
    let mut texts: Vec<Vec<&str>> = fields
        .iter()
        .map(|f| {
            let mut t = Vec::new();
            if let Some(v) = doc.get(*f) {
                collect_text(v, &mut t);
            }
            t
        })
        .collect();
    texts.sort_by_key(|t| t.iter().map(|s| s.len()).sum::<usize>());
    let stemmer = Stemmer::create(Algorithm::English);
    let mut out: Vec<String> = Vec::new();
    for t in texts.iter().flatten() {
        for w in words(t) {
            let st = index_stem(&stemmer, w);
            if st.is_empty() || st.len() > MAX_STEM_BYTES || out.contains(&st) {
                continue;
            }
            if out.len() == MAX_INDEX_STEMS {
                return out;
            }
            out.push(st);
        }
    }
    out
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
            index_terms: Some(Vec::new()),
            index_phrases: Vec::new(),
        };
        let english = Stemmer::create(Algorithm::English);
        // Split out "quoted phrases" first; the rest is terms.
        let mut rest = String::new();
        for (i, part) in text.split('"').enumerate() {
            if i % 2 == 1 {
                let p: Vec<String> = words(part).map(|w| normalize(w, case, diacritic)).collect();
                for w in words(part) {
                    let st = index_stem(&english, w);
                    if st.len() <= MAX_STEM_BYTES && !s.index_phrases.contains(&st) {
                        s.index_phrases.push(st);
                    }
                }
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
                    s.terms.push(st);
                    let ix = index_stem(&english, w);
                    match &mut s.index_terms {
                        Some(t) if !ix.is_empty() && ix.len() <= MAX_STEM_BYTES => {
                            if !t.contains(&ix) {
                                t.push(ix)
                            }
                        }
                        _ => s.index_terms = None,
                    }
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

    /// The postings an inverted index reads for this search, if it can
    /// serve it: English stems (another `language` stems differently from
    /// what is indexed), and at least one term or phrase word.
    pub fn postings(&self) -> Option<Postings> {
        if self.language != "en" {
            return None;
        }
        if !self.phrases.is_empty() {
            return (!self.index_phrases.is_empty())
                .then(|| Postings::All(self.index_phrases.clone()));
        }
        match &self.index_terms {
            Some(t) if !t.is_empty() => Some(Postings::Any(t.clone())),
            _ => None,
        }
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

fn collect_text<'v, J: View<'v>>(v: J, out: &mut Vec<&'v str>) {
    match v.scalar() {
        Scalar::Str(s) => out.push(s),
        Scalar::Array => v
            .items()
            .into_iter()
            .flatten()
            .for_each(|i| collect_text(i, out)),
        Scalar::Object => v
            .entries()
            .into_iter()
            .flatten()
            .for_each(|(_, i)| collect_text(i, out)),
        _ => {}
    }
}

impl Matcher<'_> {
    /// `None` when the document does not match; else its relevance score.
    pub fn score<'a, J: View<'a>>(&self, doc: J, fields: &[&str]) -> Option<u32> {
        let s = self.search;
        let mut texts = Vec::new();
        for f in fields {
            if let Some(v) = doc.get(f) {
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
    fn index_forms_cover_every_option() {
        let doc = json!({"name": "Zoë Smith-Jones", "notes": "Runs the Coffee Shop"});
        let stems = index_stems(&doc, &["name", "notes"]);
        assert_eq!(
            stems,
            vec!["zoe", "smith", "jone", "run", "the", "coffe", "shop"]
        );
        let opts = |text: &str, k: &str| {
            Search::parse(&Node::Map(vec![
                ("text".into(), Node::Leaf(vec![text.into()])),
                (k.into(), Node::Leaf(vec!["true".into()])),
            ]))
            .unwrap()
        };
        // Whatever the options, the postings read are the index's form.
        for s in [
            search("Running"),
            opts("RUNNING", "caseSensitive"),
            opts("running", "diacriticSensitive"),
        ] {
            assert_eq!(s.postings(), Some(Postings::Any(vec!["run".into()])));
        }
        assert_eq!(
            search("\"coffee shop\" zoe").postings(),
            Some(Postings::All(vec!["coffe".into(), "shop".into()]))
        );
        assert_eq!(search("-coffee").postings(), None);
        let fr = Search::parse(&Node::Map(vec![
            ("text".into(), Node::Leaf(vec!["chevaux".into()])),
            ("language".into(), Node::Leaf(vec!["fr".into()])),
        ]))
        .unwrap();
        assert_eq!(fr.postings(), None);
    }

    #[test]
    fn an_object_indexes_at_most_the_cap_shortest_fields_first() {
        let long: String = (0..100).map(|i| format!("word{i} ")).collect();
        let doc = json!({"notes": long, "name": "Ann Smith"});
        let stems = index_stems(&doc, &["notes", "name"]);
        assert_eq!(stems.len(), MAX_INDEX_STEMS);
        assert_eq!(&stems[..2], &["ann".to_string(), "smith".to_string()]);
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
