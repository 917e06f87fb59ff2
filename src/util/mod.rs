//! Small helpers shared by the library and the command line.

pub mod duration;

pub use duration::{format_duration, parse_duration, DurationError};

/// `n` with a comma between groups of three digits, as summaries print counts.
///
/// ```
/// assert_eq!(scraipe::util::group_digits(1_234_567), "1,234,567");
/// assert_eq!(scraipe::util::group_digits(999), "999");
/// ```
pub fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
