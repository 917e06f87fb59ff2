//! Deterministic pseudo-random English-like text: a tiny PRNG and a word list.
//!
//! Everything here is a pure function of its seed, so the same site is generated on every
//! machine and in every run (tests compare a scraper's output against it).

/// SplitMix64: tiny, fast, and good enough to make text look varied. Not for cryptography.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for one stream (`seed`, `stream`): pages use their index as the stream, so
    /// each page's text is independent of how many pages the site has.
    pub(crate) fn new(seed: u64, stream: u64) -> Rng {
        let mut rng = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        // Mix once so that neighbouring streams do not start with correlated outputs.
        rng.next_u64();
        rng
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; returns 0 for `n == 0`). The modulo bias is irrelevant here.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `1 / n`.
    pub(crate) fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Common English words: the bulk of the generated text.
#[rustfmt::skip]
pub(crate) const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
    "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there", "been",
    "if", "more", "when", "will", "would", "who", "so", "no", "she", "other", "its", "may", "these",
    "what", "them", "than", "some", "him", "time", "into", "only", "do", "could", "new", "about",
    "two", "first", "then", "any", "like", "my", "now", "over", "such", "our", "man", "me", "even",
    "most", "made", "after", "also", "did", "many", "before", "must", "through", "years", "where",
    "much", "your", "way", "well", "down", "should", "because", "each", "just", "those", "people",
    "how", "too", "little", "state", "good", "very", "make", "world", "still", "own", "see", "men",
    "work", "long", "get", "here", "between", "both", "life", "being", "under", "never", "day",
    "same", "another", "know", "while", "last", "might", "us", "great", "old", "year", "off",
    "come", "since", "against", "go", "came", "right", "used", "take", "three", "house", "river",
    "garden", "window", "letter", "market", "station", "morning", "evening", "harbour", "mountain",
    "library", "engine", "signal", "network", "crawler", "server", "request", "page", "archive",
    "journey", "village", "bridge", "forest", "weather", "language", "question", "answer", "number",
    "system", "history", "music", "picture", "paper", "story", "water", "light", "stone", "silver",
    "quiet", "bright", "careful", "ancient", "simple", "famous", "narrow", "gentle", "curious",
    "distant", "early", "strange", "useful", "walked", "wrote", "found", "carried", "opened",
    "listened", "noticed", "built", "measured", "followed", "returned", "gathered", "explained",
    "remembered", "discovered",
];

/// Words that need more than ASCII: a text extractor must keep them intact through decoding.
#[rustfmt::skip]
pub(crate) const NON_ASCII_WORDS: &[&str] = &[
    "café", "naïve", "façade", "jalapeño", "Zürich", "São Paulo", "smörgåsbord", "crème brûlée",
    "déjà vu", "Ærøskøbing", "Łódź", "Straße", "Москва", "Ελλάδα", "東京", "北京", "ソウル", "résumé",
    "piñata", "fiancée", "Dvořák", "coöperate", "Kraków", "İstanbul",
];

/// HTML entities with the text they decode to.
pub(crate) const ENTITIES: &[(&str, &str)] = &[
    ("&amp;", "&"),
    ("&lt;", "<"),
    ("&gt;", ">"),
    ("&quot;", "\""),
    ("&#39;", "'"),
    ("&eacute;", "é"),
    ("&mdash;", "—"),
    ("&copy;", "©"),
    ("&#8364;", "€"),
    ("&#x2603;", "☃"),
];

/// Appends one word (HTML) to `html` and its decoded form to `text`.
pub(crate) fn word(rng: &mut Rng, html: &mut String, text: &mut String) {
    match rng.below(40) {
        0 => {
            let w = rng.pick(NON_ASCII_WORDS);
            html.push_str(w);
            text.push_str(w);
        }
        1 => {
            let (entity, decoded) = rng.pick(ENTITIES);
            html.push_str(entity);
            text.push_str(decoded);
        }
        _ => {
            let w = rng.pick(WORDS);
            html.push_str(w);
            text.push_str(w);
        }
    }
}

/// Appends a sentence of `5..=18` words: capitalised, with the odd comma, ending in `.`, `?`
/// or `!`.
pub(crate) fn sentence(rng: &mut Rng, html: &mut String, text: &mut String) {
    let words = rng.range(5, 18);
    let (h0, t0) = (html.len(), text.len());
    for w in 0..words {
        if w > 0 {
            if rng.one_in(9) {
                html.push(',');
                text.push(',');
            }
            html.push(' ');
            text.push(' ');
        }
        word(rng, html, text);
    }
    capitalize_from(html, h0);
    capitalize_from(text, t0);
    let end = match rng.below(10) {
        0 => '?',
        1 => '!',
        _ => '.',
    };
    html.push(end);
    text.push(end);
}

/// A title of `2..=5` capitalised plain words (ASCII, so it is the same in HTML and text).
pub(crate) fn title(rng: &mut Rng) -> String {
    let words = rng.range(2, 5);
    let mut out = String::new();
    for w in 0..words {
        if w > 0 {
            out.push(' ');
        }
        let start = out.len();
        out.push_str(rng.pick::<&str>(WORDS));
        capitalize_from(&mut out, start);
    }
    out
}

/// Upper-cases the first character of `s[start..]` if it is an ASCII letter (the word lists
/// start every non-ASCII word with a letter that already has its intended case).
fn capitalize_from(s: &mut String, start: usize) {
    if let Some(first) = s.get(start..start + 1) {
        if first.as_bytes()[0].is_ascii_lowercase() {
            let upper = first.to_ascii_uppercase();
            s.replace_range(start..start + 1, &upper);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_streams_differ() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7, 1).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::new(7, 1).next_u64(), Rng::new(7, 2).next_u64());
        assert_ne!(Rng::new(7, 1).next_u64(), Rng::new(8, 1).next_u64());
    }

    #[test]
    fn sentences_are_capitalised_and_terminated() {
        let mut rng = Rng::new(1, 2);
        for _ in 0..100 {
            let (mut html, mut text) = (String::new(), String::new());
            sentence(&mut rng, &mut html, &mut text);
            assert!(html.ends_with(['.', '?', '!']));
            assert!(!text.contains("&amp;"));
            let first = text.chars().next().unwrap();
            assert!(!first.is_ascii_lowercase(), "{text}");
        }
    }

    #[test]
    fn range_and_unit_stay_in_bounds() {
        let mut rng = Rng::new(3, 4);
        for _ in 0..1000 {
            let r = rng.range(5, 9);
            assert!((5..=9).contains(&r));
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(rng.below(0), 0);
    }
}
