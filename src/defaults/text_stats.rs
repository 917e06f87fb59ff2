//! [`TextStatsAnalyzer`]: word, character and sentence counts with Python Scraipe's exact
//! definitions.

use std::sync::LazyLock;

#[cfg(test)]
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
/// last one; so each maximal run of word characters and apostrophes that contains a word
/// character is one word, without its leading and trailing apostrophes. [`count_words`] scans
/// for exactly that in one pass; this regex says the same thing and checks it in the tests.
#[cfg(test)]
static WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[\p{L}\p{N}_](?:[\p{L}\p{N}_']*[\p{L}\p{N}_])?").expect("valid word pattern")
});

/// The code point ranges of `[\p{L}\p{N}_]`, from the same Unicode tables the regex crate uses.
static WORD_RANGES: LazyLock<Vec<(char, char)>> = LazyLock::new(|| {
    let hir = regex_syntax::parse(r"[\p{L}\p{N}_]").expect("valid class");
    match hir.kind() {
        regex_syntax::hir::HirKind::Class(regex_syntax::hir::Class::Unicode(class)) => class
            .ranges()
            .iter()
            .map(|r| (r.start(), r.end()))
            .collect(),
        other => unreachable!("a Unicode class, not {other:?}"),
    }
});

fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }

    let ranges = &*WORD_RANGES;
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Character classes for the one-pass scan in [`TextStats::of`] (bit flags).
const WORD_CHAR: u8 = 1;
const QUOTE: u8 = 2;
const SENTENCE_END: u8 = 4;
/// Counts as text in a sentence piece: neither a Python space nor a sentence end.
const TEXT: u8 = 8;

const fn ascii_class(b: u8) -> u8 {
    let word = b.is_ascii_alphanumeric() || b == b'_';
    let space = matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f);
    let end = matches!(b, b'.' | b'!' | b'?');
    let mut class = 0;
    if word {
        class |= WORD_CHAR;
    }
    if b == b'\'' {
        class |= QUOTE;
    }
    if end {
        class |= SENTENCE_END;
    }
    if !space && !end {
        class |= TEXT;
    }
    class
}

static ASCII_CLASS: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut b = 0;
    while b < 128 {
        t[b] = ascii_class(b as u8);
        b += 1;
    }
    t
};

/// One bit per byte of a 64-byte block.
struct Masks {
    /// `[A-Za-z0-9_]`.
    word: u64,
    /// `.`, `!`, `?`.
    end: u64,
    /// Neither a space nor a sentence end.
    text: u64,
    /// Needs the byte-by-byte rules: non-ASCII or an apostrophe.
    odd: u64,
}

/// The masks of a block, 16 bytes per SSE2 comparison (SSE2 is part of every x86-64 CPU).
#[cfg(target_arch = "x86_64")]
fn masks(block: &[u8; 64]) -> Masks {
    use std::arch::x86_64::*;
    let mut m = Masks {
        word: 0,
        end: 0,
        text: 0,
        odd: 0,
    };
    for (n, chunk) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of the x86-64 baseline, so every x86-64 target enables it and its
        // intrinsics are sound to call; the load reads the 16 bytes of `chunk`, with no
        // alignment requirement.
        unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            let splat = |b: u8| _mm_set1_epi8(b as i8);
            // Inclusive byte range; ASCII bytes compare as positive `i8`, others never match.
            let between = |x: __m128i, lo: u8, hi: u8| {
                _mm_and_si128(
                    _mm_cmpgt_epi8(x, splat(lo - 1)),
                    _mm_cmplt_epi8(x, splat(hi + 1)),
                )
            };
            let folded = _mm_or_si128(v, splat(0x20)); // 'A'..='Z' -> 'a'..='z'
            let word = _mm_or_si128(
                _mm_or_si128(between(folded, b'a', b'z'), between(v, b'0', b'9')),
                _mm_cmpeq_epi8(v, splat(b'_')),
            );
            let end = _mm_or_si128(
                _mm_or_si128(
                    _mm_cmpeq_epi8(v, splat(b'.')),
                    _mm_cmpeq_epi8(v, splat(b'!')),
                ),
                _mm_cmpeq_epi8(v, splat(b'?')),
            );
            // Python's ASCII whitespace: space, \t \n \v \f \r and the separators 0x1c..=0x1f.
            let space = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, splat(b' ')), between(v, 0x09, 0x0d)),
                between(v, 0x1c, 0x1f),
            );
            let quote = _mm_cmpeq_epi8(v, splat(b'\''));
            let bits = |x: __m128i| u64::from(_mm_movemask_epi8(x) as u16) << (16 * n);
            m.word |= bits(word);
            m.end |= bits(end);
            m.text |= !bits(_mm_or_si128(space, end)) & (0xffff << (16 * n));
            m.odd |= bits(v) | bits(quote); // the sign bit of `v` marks non-ASCII bytes
        }
    }
    m
}

/// The masks of a block, byte by byte.
#[cfg(not(target_arch = "x86_64"))]
fn masks(block: &[u8; 64]) -> Masks {
    let mut m = Masks {
        word: 0,
        end: 0,
        text: 0,
        odd: 0,
    };
    for (k, &b) in block.iter().enumerate() {
        let class = ASCII_CLASS[(b & 0x7f) as usize];
        m.word |= u64::from(class & WORD_CHAR) << k;
        m.end |= u64::from((class & SENTENCE_END) >> 2) << k;
        m.text |= u64::from((class & TEXT) >> 3) << k;
        m.odd |= u64::from((b >> 7) | ((class & QUOTE) >> 1)) << k;
    }
    m
}

/// The running counts of [`TextStats::of`]; see there for the rules.
#[derive(Default)]
struct Scan {
    word_count: usize,
    letters: usize,
    sentence_count: usize,
    in_word: usize,
    pending: usize,
    piece_has_text: usize,
}

impl Scan {
    /// Counts a block of 64 ASCII bytes without apostrophes at once, with one bit per byte:
    /// inside such a block a word is a run of word bytes, so words start where a word byte
    /// follows a non-word byte (or, at the block's start, where no word was in progress), and
    /// every word byte is a letter. Returns false, changing nothing, for any other block.
    fn block(&mut self, block: &[u8; 64]) -> bool {
        let Masks {
            word,
            end,
            text,
            odd,
        } = masks(block);
        if odd != 0 {
            return false;
        }
        // A word continues into this block only if one is in progress; pending apostrophes
        // before it are confirmed by a word byte at position 0.
        let carried = word & 1 & (self.in_word as u64);
        let starts = word & !((word << 1) | carried);
        self.word_count += starts.count_ones() as usize;
        self.letters +=
            word.count_ones() as usize + (self.pending & (carried as usize).wrapping_neg());
        self.pending = 0;
        self.in_word = (word >> 63) as usize;
        // Sentences: each `.`, `!` or `?` closes a piece, which counts if it held text.
        let mut ends = end;
        let mut piece_start = 0u32;
        let mut has_text = self.piece_has_text;
        while ends != 0 {
            let p = ends.trailing_zeros();
            let before = if p == 0 {
                0
            } else {
                text & (u64::MAX >> (64 - p))
            };
            let in_piece = before >> piece_start;
            has_text |= usize::from(in_piece != 0);
            self.sentence_count += has_text;
            has_text = 0;
            piece_start = p + 1;
            ends &= ends - 1;
        }
        let rest = if piece_start >= 64 {
            0
        } else {
            text >> piece_start
        };
        self.piece_has_text = has_text | usize::from(rest != 0);
        true
    }

    #[inline(always)]
    fn step(&mut self, class: u8) {
        let is_word = usize::from(class & WORD_CHAR != 0);
        let is_quote = usize::from(class & QUOTE != 0);
        let is_end = usize::from(class & SENTENCE_END != 0);
        let is_text = usize::from(class & TEXT != 0);
        // Masks (all ones or zero) instead of multiplications keep the per-byte dependency
        // chains to an add and an `and`.
        let word_mask = is_word.wrapping_neg();
        let inner_quote = is_quote & self.in_word;
        self.word_count += is_word & (self.in_word ^ 1);
        self.letters += (1 + self.pending) & word_mask;
        self.pending = (self.pending + 1) & inner_quote.wrapping_neg();
        self.in_word = is_word | inner_quote;
        self.sentence_count += is_end & self.piece_has_text;
        self.piece_has_text = (self.piece_has_text | is_text) & (is_end ^ 1);
    }
}

/// The class and UTF-8 length of the (non-ASCII) character starting `rest`.
#[cold]
#[inline(never)]
fn non_ascii_class(rest: &str) -> (u8, usize) {
    let c = rest.chars().next().expect("not empty");
    (class_of(c), c.len_utf8())
}

/// The class of any character (non-ASCII ones through the Unicode tables).
fn class_of(c: char) -> u8 {
    if c.is_ascii() {
        return ASCII_CLASS[c as usize];
    }
    let mut class = 0;
    if is_word_char(c) {
        class |= WORD_CHAR;
    }
    if !is_python_space(c) {
        class |= TEXT;
    }
    class
}

/// (words, characters in words): see [`WORD`] for the definition. (The same state machine is
/// fused into [`TextStats::of`]; this standalone copy is what the tests compare to the regex.)
#[cfg(test)]
fn count_words(text: &str) -> (usize, usize) {
    let (mut words, mut letters) = (0usize, 0usize);
    // Inside a run: characters since the run's first word character, and how many of the
    // trailing ones are apostrophes (they are dropped if the run ends there).
    let mut in_word = false;
    let (mut len, mut trailing_quotes) = (0usize, 0usize);
    for c in text.chars() {
        if c == '\'' {
            if in_word {
                len += 1;
                trailing_quotes += 1;
            }
            // A leading apostrophe does not start a word: stay outside.
            continue;
        }
        if is_word_char(c) {
            if !in_word {
                in_word = true;
                len = 0;
            }
            len += 1;
            trailing_quotes = 0;
        } else if in_word {
            words += 1;
            letters += len - trailing_quotes;
            in_word = false;
        }
    }
    if in_word {
        words += 1;
        letters += len - trailing_quotes;
    }
    (words, letters)
}

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
        // One pass over the bytes for all three counts, without a data-dependent branch for
        // ASCII (word boundaries come every few bytes; a mispredicted branch at each one cost
        // more than all the arithmetic below). Equivalent to the regex definitions above:
        // * a word is counted at its first word character (`in_word` false before it);
        // * apostrophes after a word character are `pending` until another word character
        //   confirms them as inner apostrophes (then they count as letters) — trailing and
        //   leading ones never count;
        // * a sentence is counted at a `.`, `!` or `?` ending a piece that had text, and at the
        //   end of the text.
        let bytes = text.as_bytes();
        let mut scan = Scan::default();
        let mut i = 0;
        while i < bytes.len() {
            // Whole 64-byte blocks of plain ASCII without apostrophes (most of any page) are
            // counted with bit masks; anything else goes byte by byte.
            if let Some(block) = bytes.get(i..i + 64) {
                if scan.block(block.try_into().expect("64 bytes")) {
                    i += 64;
                    continue;
                }
            }
            let end = (i + 64).min(bytes.len());
            while i < end {
                let b = bytes[i];
                if b < 0x80 {
                    scan.step(ASCII_CLASS[b as usize]);
                    i += 1;
                } else {
                    let (class, len) = non_ascii_class(&text[i..]);
                    scan.step(class);
                    i += len;
                }
            }
        }
        // Python's `len(str)`: every byte that does not continue a UTF-8 sequence.
        let characters = bytes.iter().filter(|&&b| (b as i8) >= -0x40).count();
        let Scan {
            word_count,
            letters,
            sentence_count,
            piece_has_text,
            ..
        } = scan;
        let sentence_count = sentence_count + piece_has_text;
        let average_word_length = if word_count == 0 {
            0.0
        } else {
            letters as f64 / word_count as f64
        };
        TextStats {
            word_count,
            character_count: characters,
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

    /// The one-pass scanner and the sentence split agree with the regexes that define them,
    /// on random text mixing ASCII, apostrophes, punctuation, combining marks and other scripts.
    #[test]
    fn scanner_matches_the_regex_definition() {
        let alphabet: Vec<char> = "ab Z9_'’ .!?\n\té\u{301}ü中文१२ाऀ\u{200d}-,\u{1c}"
            .chars()
            .collect();
        let mut seed = 0x1234_5678_9abc_def0u64;
        let sentence_re = Regex::new(r"[.!?]+").unwrap();
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Short texts over the whole alphabet, and long ones (several 64-byte blocks) that
            // are mostly plain ASCII with an occasional apostrophe or non-ASCII character.
            let long = seed.is_multiple_of(3);
            let len = if long {
                60 + (seed % 300) as usize
            } else {
                (seed % 24) as usize
            };
            let mut x = seed;
            let text: String = (0..len)
                .map(|k| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if long && !x.is_multiple_of(97) {
                        let ascii = b"abcXYZ019_ .!?,\n\t";
                        ascii[(x >> 8) as usize % ascii.len()] as char
                    } else {
                        alphabet[((seed >> (k % 50)) as usize + k * 7) % alphabet.len()]
                    }
                })
                .collect();
            let expected_words: Vec<&str> = WORD.find_iter(&text).map(|m| m.as_str()).collect();
            let letters: usize = expected_words.iter().map(|w| w.chars().count()).sum();
            assert_eq!(
                count_words(&text),
                (expected_words.len(), letters),
                "{text:?}"
            );
            let stats = TextStats::of(&text);
            assert_eq!(stats.word_count, expected_words.len(), "{text:?}");
            assert_eq!(stats.character_count, text.chars().count(), "{text:?}");
            let by_regex = sentence_re
                .split(&text)
                .filter(|p| !p.chars().all(is_python_space))
                .count();
            assert_eq!(TextStats::of(&text).sentence_count, by_regex, "{text:?}");
        }
    }
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
