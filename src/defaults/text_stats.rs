//! [`TextStatsAnalyzer`]: word, character and sentence counts with Python Scraipe's exact
//! definitions.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::results::AnalysisResult;
use crate::traits::Analyzer;

/// A word as Python's `re.findall(r"\b[\w']+\b", text)` finds it.
///
/// Python's Unicode `\w` is "alphanumeric or underscore" where alphanumeric means the general
/// categories L* and N* (`str.isalnum`); unlike Rust's `\w` it excludes combining marks, so
/// `"e\u{301}cole"` is two words there and here. Within a run of word characters and
/// apostrophes, `\b...\b` makes the match start at the first word character and end at the
/// last one; this pattern encodes exactly that.
static WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[\p{L}\p{N}_](?:[\p{L}\p{N}_']*[\p{L}\p{N}_])?").expect("valid word pattern")
});

/// Sentence separators: runs of `.`, `!`, `?` (Python's `re.split(r'[.!?]+', text)`).
static SENTENCE_BREAK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[.!?]+").expect("valid sentence pattern"));

/// Python's `str.isspace`: Rust's `char::is_whitespace` plus the four information separators
/// U+001C..=U+001F, which Python also strips.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The statistics [`TextStatsAnalyzer`] reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextStats {
    /// Words: runs of letters, digits, `_` and inner apostrophes.
    pub word_count: usize,
    /// Unicode scalar values (what Python's `len(str)` counts), not bytes.
    pub character_count: usize,
    /// Non-blank pieces between runs of `.`, `!`, `?`.
    pub sentence_count: usize,
    /// Mean word length in characters; 0 without words.
    pub average_word_length: f64,
}

impl TextStats {
    /// Computes the statistics of `text`.
    ///
    /// ```
    /// use scraipe::defaults::TextStats;
    /// let s = TextStats::of("Hello world! This is a test.");
    /// assert_eq!((s.word_count, s.character_count, s.sentence_count), (6, 28, 2));
    /// assert_eq!(s.average_word_length, 3.5);
    ///
    /// // Apostrophes stay inside words; "..." and "?!" end one sentence each.
    /// let s = TextStats::of("Don't stop... believing?!");
    /// assert_eq!((s.word_count, s.sentence_count), (3, 2));
    /// ```
    pub fn of(text: &str) -> TextStats {
        let mut word_count = 0usize;
        let mut letters = 0usize;
        for word in WORD.find_iter(text) {
            word_count += 1;
            letters += word.as_str().chars().count();
        }
        let sentence_count = SENTENCE_BREAK
            .split(text)
            .filter(|piece| !piece.chars().all(is_python_space))
            .count();
        let average_word_length = if word_count == 0 {
            0.0
        } else {
            letters as f64 / word_count as f64
        };
        TextStats {
            word_count,
            character_count: text.chars().count(),
            sentence_count,
            average_word_length,
        }
    }

    /// The output object, with Python Scraipe's keys and JSON types (an integer `0` average
    /// when there are no words, as Python's `... else 0` gives).
    pub fn to_json(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("word_count".into(), self.word_count.into());
        out.insert("character_count".into(), self.character_count.into());
        out.insert("sentence_count".into(), self.sentence_count.into());
        let average = if self.word_count == 0 {
            Value::from(0)
        } else {
            Value::from(self.average_word_length)
        };
        out.insert("average_word_length".into(), average);
        out
    }
}

/// Computes word count, character count, sentence count and average word length
/// (Python Scraipe's `TextStatsAnalyzer`). Synchronous: its batch work runs on the blocking
/// pool.
///
/// ```
/// use scraipe::{defaults::TextStatsAnalyzer, Analyzer};
/// let result = TextStatsAnalyzer.analyze("Hello world! This is a test.");
/// let out = result.output().unwrap();
/// assert_eq!(out["word_count"], 6);
/// assert_eq!(out["character_count"], 28);
/// assert_eq!(out["sentence_count"], 2);
/// assert_eq!(out["average_word_length"], 3.5);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TextStatsAnalyzer;

impl Analyzer for TextStatsAnalyzer {
    fn analyze(&self, content: &str) -> AnalysisResult {
        AnalysisResult::succeed(TextStats::of(content).to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Expected values computed with Python Scraipe 0.1.73's `TextStatsAnalyzer` code on
    /// CPython 3.11.
    #[test]
    fn matches_python_scraipe() {
        let cases: &[(&str, Value)] = &[
            ("Hello world! This is a test.", json!([6, 28, 2, 3.5])),
            ("", json!([0, 0, 0, 0])),
            ("   ", json!([0, 3, 0, 0])),
            (
                "Wait... what?! Really?!",
                json!([3, 23, 3, 4.666666666666667]),
            ),
            ("It's John's 'quoted' dog.", json!([4, 25, 1, 4.75])),
            ("''hello'' '' 'a'", json!([2, 16, 1, 3.0])),
            ("Café naïve façade. Ünïcödé!", json!([4, 27, 2, 5.5])),
            ("日本語のテキスト。これは文です。", json!([2, 16, 1, 7.0])),
            ("Привет, мир! Как дела?", json!([4, 22, 2, 4.0])),
            ("e\u{301}cole", json!([2, 6, 1, 2.5])),
            ("x_y 42 3.14 ²³ Ⅻ", json!([6, 16, 2, 1.8333333333333333])),
            ("don't stop... believing", json!([3, 23, 2, 6.0])),
            ("\u{1c}. \u{1f}!", json!([0, 5, 0, 0])),
            ("नमस्ते दुनिया", json!([5, 13, 1, 1.4])),
            ("a'b'c d''e", json!([2, 10, 1, 4.5])),
            ("one two three four", json!([4, 18, 1, 3.75])),
        ];
        for (text, expected) in cases {
            let out = TextStatsAnalyzer.analyze(text).into_output().unwrap();
            let got = json!([
                out["word_count"],
                out["character_count"],
                out["sentence_count"],
                out["average_word_length"]
            ]);
            // Compare the JSON text: 0 and 0.0 serialise differently, as in Python.
            assert_eq!(got.to_string(), expected.to_string(), "text {text:?}");
        }
    }

    #[test]
    fn output_keys_in_python_order() {
        let out = TextStatsAnalyzer.analyze("a").into_output().unwrap();
        let keys: Vec<_> = out.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "word_count",
                "character_count",
                "sentence_count",
                "average_word_length"
            ]
        );
    }
}
