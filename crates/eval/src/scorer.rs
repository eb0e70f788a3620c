//! Scorers: how good an answer is, in `[0, 1]`.
//!
//! Every scorer but [`Scorer::Judge`] is a pure function of the answer text;
//! the judge asks a [`Provider`] to grade. Scorers are data (serde, tagged by
//! `kind`) so suites can be written as JSON files:
//!
//! ```
//! use tuneloop_eval::Scorer;
//! let s: Scorer = serde_json::from_str(r#"{"kind": "numeric", "expected": 18, "tolerance": 0.01}"#).unwrap();
//! assert_eq!(s.score_text("That makes $18.00 in total.").unwrap(), 1.0);
//! assert_eq!(s.score_text("About 19.").unwrap(), 0.0);
//! ```

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use regex::Regex;
use serde::{Deserialize, Serialize};
use tuneloop_core::ParameterSet;
use tuneloop_providers::{GenerationRequest, Message, Provider};

/// How an answer is scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scorer {
    /// 1 if the answer equals `expected` after trimming whitespace, quotes
    /// and a final period (case-insensitive unless `case_sensitive`), else 0.
    Exact {
        /// The expected answer.
        expected: String,
        /// Compare case.
        #[serde(default)]
        case_sensitive: bool,
    },
    /// The share of `all` that occurs in the answer.
    Contains {
        /// Phrases to look for (at least one).
        all: Vec<String>,
        /// Compare case.
        #[serde(default)]
        case_sensitive: bool,
    },
    /// 1 if `pattern` (Rust `regex` syntax) matches somewhere, else 0.
    Regex {
        /// The pattern.
        pattern: String,
    },
    /// 0 if no JSON value can be read from the answer (a bare value, or one
    /// inside a Markdown code fence, or the outermost `{…}`/`[…]`); else
    /// `(1 + k) / (1 + K)` where `K` is the number of `required_keys` and
    /// `k` how many are present (in the object, or in every object of a
    /// top-level array). Dotted keys (`a.b`) reach into nested objects.
    Json {
        /// Keys the value must have.
        #[serde(default)]
        required_keys: Vec<String>,
    },
    /// 1 if the last number in the answer is within `tolerance` of
    /// `expected`, else 0. Thousands separators and a leading `$` are read.
    Numeric {
        /// The expected value.
        expected: f64,
        /// Largest absolute difference accepted (default 1e-6).
        #[serde(default = "default_tolerance")]
        tolerance: f64,
    },
    /// The share of the given bounds that hold (words are runs of
    /// non-whitespace; lines are non-empty lines; bullets are lines that
    /// start with `-`, `*`, `•` or `N.`).
    Length {
        /// At least this many words.
        #[serde(default)]
        min_words: Option<usize>,
        /// At most this many words.
        #[serde(default)]
        max_words: Option<usize>,
        /// At least this many lines.
        #[serde(default)]
        min_lines: Option<usize>,
        /// At most this many lines.
        #[serde(default)]
        max_lines: Option<usize>,
        /// At least this many bullet lines.
        #[serde(default)]
        min_bullets: Option<usize>,
    },
    /// Asks a judge model to grade the answer against the case's reference
    /// answer and `rubric`; reads `SCORE: s` (s in `[0, 1]`) or `s/10` from
    /// its reply.
    Judge {
        /// What a good answer does.
        rubric: String,
    },
}

fn default_tolerance() -> f64 {
    1e-6
}

/// Why an answer could not be scored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScoreError {
    /// The scorer's settings are invalid (caught when a suite is loaded).
    #[error("invalid scorer: {0}")]
    Invalid(String),
    /// A judge scorer was used without a judge.
    #[error("the judge scorer needs a judge provider")]
    NoJudge,
    /// The judge failed or gave no readable score.
    #[error("judge: {0}")]
    Judge(String),
}

/// A judge: a provider and the parameters it is called with.
#[derive(Debug, Clone)]
pub struct Judge {
    /// Who grades.
    pub provider: Arc<dyn Provider>,
    /// With which parameters (model, a low temperature).
    pub parameters: ParameterSet,
}

impl Scorer {
    /// Checks the settings: a non-empty phrase list, a valid pattern, a
    /// finite tolerance, consistent bounds, a rubric.
    ///
    /// # Errors
    /// [`ScoreError::Invalid`] naming the field.
    pub fn validate(&self) -> Result<(), ScoreError> {
        let bad = |m: String| Err(ScoreError::Invalid(m));
        match self {
            Scorer::Exact { expected, .. } if expected.trim().is_empty() => {
                bad("expected: empty".into())
            }
            Scorer::Contains { all, .. } if all.is_empty() || all.iter().any(String::is_empty) => {
                bad("all: needs at least one non-empty phrase".into())
            }
            Scorer::Regex { pattern } => match Regex::new(pattern) {
                Ok(_) => Ok(()),
                Err(e) => bad(format!("pattern: {e}")),
            },
            Scorer::Numeric {
                expected,
                tolerance,
            } => {
                if !expected.is_finite() {
                    bad(format!("expected: {expected} is not finite"))
                } else if !(tolerance.is_finite() && *tolerance >= 0.0) {
                    bad(format!("tolerance: {tolerance} is not a finite value >= 0"))
                } else {
                    Ok(())
                }
            }
            Scorer::Length {
                min_words,
                max_words,
                min_lines,
                max_lines,
                min_bullets,
            } => {
                if [min_words, max_words, min_lines, max_lines, min_bullets]
                    .iter()
                    .all(|b| b.is_none())
                {
                    return bad("length: give at least one bound".into());
                }
                for (name, lo, hi) in [
                    ("words", min_words, max_words),
                    ("lines", min_lines, max_lines),
                ] {
                    if let (Some(lo), Some(hi)) = (lo, hi)
                        && lo > hi
                    {
                        return bad(format!("min_{name} {lo} > max_{name} {hi}"));
                    }
                }
                Ok(())
            }
            Scorer::Judge { rubric } if rubric.trim().is_empty() => bad("rubric: empty".into()),
            _ => Ok(()),
        }
    }

    /// Whether scoring needs a judge provider.
    pub fn needs_judge(&self) -> bool {
        matches!(self, Scorer::Judge { .. })
    }

    /// Scores `answer` without a judge.
    ///
    /// # Errors
    /// [`ScoreError::NoJudge`] for a judge scorer; [`ScoreError::Invalid`]
    /// for settings [`validate`](Self::validate) rejects.
    pub fn score_text(&self, answer: &str) -> Result<f64, ScoreError> {
        match self {
            Scorer::Exact {
                expected,
                case_sensitive,
            } => {
                let (a, e) = (normalize(answer), normalize(expected));
                let same = if *case_sensitive {
                    a == e
                } else {
                    a.to_lowercase() == e.to_lowercase()
                };
                Ok(f64::from(u8::from(same)))
            }
            Scorer::Contains {
                all,
                case_sensitive,
            } => {
                if all.is_empty() {
                    return Err(ScoreError::Invalid("all: empty".into()));
                }
                let hay = if *case_sensitive {
                    answer.to_owned()
                } else {
                    answer.to_lowercase()
                };
                let found = all
                    .iter()
                    .filter(|p| {
                        if *case_sensitive {
                            hay.contains(p.as_str())
                        } else {
                            hay.contains(&p.to_lowercase())
                        }
                    })
                    .count();
                Ok(found as f64 / all.len() as f64)
            }
            Scorer::Regex { pattern } => {
                let re = compiled(pattern)?;
                Ok(f64::from(u8::from(re.is_match(answer))))
            }
            Scorer::Json { required_keys } => Ok(match extract_json(answer) {
                None => 0.0,
                Some(v) => {
                    let k = required_keys.iter().filter(|k| has_key(&v, k)).count();
                    (1 + k) as f64 / (1 + required_keys.len()) as f64
                }
            }),
            Scorer::Numeric {
                expected,
                tolerance,
            } => Ok(match last_number(answer) {
                Some(x) if (x - expected).abs() <= *tolerance => 1.0,
                _ => 0.0,
            }),
            Scorer::Length {
                min_words,
                max_words,
                min_lines,
                max_lines,
                min_bullets,
            } => {
                let words = answer.split_whitespace().count();
                let lines: Vec<&str> = answer
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                let bullets = lines.iter().filter(|l| is_bullet(l)).count();
                let checks = [
                    min_words.map(|m| words >= m),
                    max_words.map(|m| words <= m),
                    min_lines.map(|m| lines.len() >= m),
                    max_lines.map(|m| lines.len() <= m),
                    min_bullets.map(|m| bullets >= m),
                ];
                let total = checks.iter().flatten().count();
                if total == 0 {
                    return Err(ScoreError::Invalid("length: no bound".into()));
                }
                Ok(checks.iter().flatten().filter(|ok| **ok).count() as f64 / total as f64)
            }
            Scorer::Judge { .. } => Err(ScoreError::NoJudge),
        }
    }

    /// Scores `answer` to `prompt`, asking `judge` when this is a judge
    /// scorer (`reference` is the case's known-good answer, if any).
    ///
    /// # Errors
    /// As [`score_text`](Self::score_text); for a judge, a provider failure
    /// or a reply with no readable score.
    pub async fn score(
        &self,
        prompt: &str,
        answer: &str,
        reference: Option<&str>,
        judge: Option<&Judge>,
    ) -> Result<f64, ScoreError> {
        let Scorer::Judge { rubric } = self else {
            return self.score_text(answer);
        };
        let judge = judge.ok_or(ScoreError::NoJudge)?;
        let text = format!(
            "You grade answers. Rubric: {rubric}\n\
             Question:\n{prompt}\n\
             <reference>{}</reference>\n\
             <answer>{answer}</answer>\n\
             Reply with one line `SCORE: s` where s is a number from 0 (useless) to 1 (perfect).",
            reference.unwrap_or("(none given)")
        );
        let request = GenerationRequest::new(
            format!("judge-{:016x}", fnv(&text)),
            vec![Message::user(text)],
            &judge.parameters,
        )
        .with_task_type("judge");
        let reply = judge
            .provider
            .generate(&request)
            .await
            .map_err(|e| ScoreError::Judge(e.to_string()))?;
        parse_grade(&reply.text).ok_or_else(|| {
            ScoreError::Judge(format!(
                "no score in the reply {:?}",
                reply.text.chars().take(120).collect::<String>()
            ))
        })
    }
}

/// Compiled patterns, shared: a suite's few patterns are compiled once
/// however many answers they score.
fn compiled(pattern: &str) -> Result<Regex, ScoreError> {
    static CACHE: LazyLock<Mutex<HashMap<String, Regex>>> = LazyLock::new(Mutex::default);
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(re) = cache.get(pattern) {
        return Ok(re.clone());
    }
    let re = Regex::new(pattern).map_err(|e| ScoreError::Invalid(format!("pattern: {e}")))?;
    if cache.len() < 1024 {
        cache.insert(pattern.to_owned(), re.clone());
    }
    Ok(re)
}

fn fnv(s: &str) -> u64 {
    let mut h = tuneloop_core::hash::StableHasher::new();
    h.write_str(s);
    h.finish()
}

/// Reads a grade from a judge's reply: `SCORE: 0.8`, `score = 8/10`,
/// `Score: 80%`; the value must land in `[0, 1]` after scaling.
pub fn parse_grade(reply: &str) -> Option<f64> {
    static RE: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(r"(?i)score\s*[:=]?\s*(-?[0-9]+(?:\.[0-9]+)?)\s*(/\s*(10|100|5|1)\b|%)?").ok()
    });
    let re = RE.as_ref()?;
    let c = re.captures_iter(reply).last()?;
    let v: f64 = c.get(1)?.as_str().parse().ok()?;
    let scaled = match c.get(2).map(|m| m.as_str().trim()) {
        None => v,
        Some("%") => v / 100.0,
        Some(_) => v / c.get(3)?.as_str().parse::<f64>().ok()?,
    };
    (0.0..=1.0).contains(&scaled).then_some(scaled)
}

fn normalize(s: &str) -> String {
    let t = s.trim().trim_end_matches('.').trim();
    let t = t.trim_matches(|c| c == '"' || c == '\'' || c == '`').trim();
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_bullet(line: &str) -> bool {
    if line.starts_with(['-', '*', '•']) {
        return true;
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && line[digits..].starts_with(['.', ')'])
}

/// The JSON value in an answer: the whole text, a fenced block, or the
/// outermost braces or brackets.
pub fn extract_json(answer: &str) -> Option<serde_json::Value> {
    let t = answer.trim();
    if let Ok(v) = serde_json::from_str(t) {
        return Some(v);
    }
    if let Some(start) = t.find("```") {
        let rest = &t[start + 3..];
        let body_start = rest.find('\n').map_or(0, |i| i + 1);
        if let Some(end) = rest[body_start..].find("```")
            && let Ok(v) = serde_json::from_str(rest[body_start..body_start + end].trim())
        {
            return Some(v);
        }
    }
    for (open, close) in [('{', '}'), ('[', ']')] {
        if let (Some(a), Some(b)) = (t.find(open), t.rfind(close))
            && a < b
            && let Ok(v) = serde_json::from_str(&t[a..=b])
        {
            return Some(v);
        }
    }
    None
}

fn has_key(v: &serde_json::Value, dotted: &str) -> bool {
    match v {
        serde_json::Value::Array(items) => {
            !items.is_empty() && items.iter().all(|item| has_key(item, dotted))
        }
        _ => {
            let mut cur = v;
            for part in dotted.split('.') {
                match cur.get(part) {
                    Some(next) => cur = next,
                    None => return false,
                }
            }
            true
        }
    }
}

/// The last number in a text (`-3.5`, `1,234`, `$18.00`, `42.`).
pub fn last_number(text: &str) -> Option<f64> {
    static RE: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"-?[0-9][0-9,]*(?:\.[0-9]+)?").ok());
    let re = RE.as_ref()?;
    re.find_iter(text)
        .filter_map(|m| {
            let s = m.as_str().trim_end_matches(',').replace(',', "");
            s.parse::<f64>().ok()
        })
        .last()
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // scores are exact ratios of small integers
mod tests {
    use super::*;

    fn s(json: &str) -> Scorer {
        let s: Scorer = serde_json::from_str(json).unwrap();
        s.validate().unwrap();
        s
    }

    #[test]
    fn exact_ignores_case_quotes_and_a_final_period() {
        let sc = s(r#"{"kind": "exact", "expected": "Canberra"}"#);
        assert_eq!(sc.score_text("  canberra.\n").unwrap(), 1.0);
        assert_eq!(sc.score_text("\"Canberra\"").unwrap(), 1.0);
        assert_eq!(sc.score_text("Sydney").unwrap(), 0.0);
        let cs = s(r#"{"kind": "exact", "expected": "Canberra", "case_sensitive": true}"#);
        assert_eq!(cs.score_text("canberra").unwrap(), 0.0);
    }

    #[test]
    fn contains_scores_the_share_of_phrases() {
        let sc = s(r#"{"kind": "contains", "all": ["scatter", "wavelength", "Rayleigh"]}"#);
        assert_eq!(
            sc.score_text("Light SCATTERS by wavelength").unwrap(),
            2.0 / 3.0
        );
    }

    #[test]
    fn json_reads_fences_and_counts_keys() {
        let sc = s(r#"{"kind": "json", "required_keys": ["name", "age", "contact.email"]}"#);
        let fenced = "Here:\n```json\n{\"name\": \"Jane\", \"age\": 34, \"contact\": {\"email\": \"j@x\"}}\n```";
        assert_eq!(sc.score_text(fenced).unwrap(), 1.0);
        assert_eq!(sc.score_text("{\"name\": 1}").unwrap(), 2.0 / 4.0);
        assert_eq!(sc.score_text("{name: 1}").unwrap(), 0.0);
        let arr = s(r#"{"kind": "json", "required_keys": ["id"]}"#);
        assert_eq!(arr.score_text("[{\"id\":1},{\"id\":2}]").unwrap(), 1.0);
        assert_eq!(arr.score_text("[{\"id\":1},{\"x\":2}]").unwrap(), 0.5);
    }

    #[test]
    fn numeric_reads_the_last_number() {
        assert_eq!(
            last_number("3 pens cost $2, so 27 cost $1,234.50."),
            Some(1234.5)
        );
        assert_eq!(last_number("answer: -7"), Some(-7.0));
        assert_eq!(last_number("none"), None);
        let sc = s(r#"{"kind": "numeric", "expected": 18, "tolerance": 0.01}"#);
        assert_eq!(sc.score_text("The answer is 18.").unwrap(), 1.0);
        assert_eq!(sc.score_text("no number").unwrap(), 0.0);
    }

    #[test]
    fn length_scores_the_share_of_bounds_met() {
        let sc = s(r#"{"kind": "length", "min_lines": 3, "max_lines": 3, "max_words": 5}"#);
        assert_eq!(sc.score_text("a\nb\nc").unwrap(), 1.0);
        // Three lines (2 bounds hold) but six words (1 fails).
        assert_eq!(sc.score_text("a b\nc d\ne f").unwrap(), 2.0 / 3.0);
        let b = s(r#"{"kind": "length", "min_bullets": 2}"#);
        assert_eq!(b.score_text("- one\n2. two\nthree").unwrap(), 1.0);
    }

    #[test]
    fn invalid_settings_are_named() {
        let bad = |j: &str| {
            serde_json::from_str::<Scorer>(j)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string()
        };
        assert!(bad(r#"{"kind": "regex", "pattern": "("}"#).contains("pattern"));
        assert!(
            bad(r#"{"kind": "numeric", "expected": 1, "tolerance": -1}"#).contains("tolerance")
        );
        assert!(bad(r#"{"kind": "length", "min_words": 9, "max_words": 3}"#).contains("min_words"));
        assert!(bad(r#"{"kind": "contains", "all": []}"#).contains("all"));
    }

    #[test]
    fn grades_are_read_in_several_forms() {
        assert_eq!(parse_grade("SCORE: 0.8"), Some(0.8));
        assert_eq!(parse_grade("Overall score = 7/10."), Some(0.7));
        assert_eq!(parse_grade("score: 85%"), Some(0.85));
        assert_eq!(parse_grade("score: 7"), None);
        assert_eq!(parse_grade("great answer"), None);
    }
}
