//! Human durations for the command line: `30s`, `5m`, `2h`, `1500ms`, `1h30m`, `0s`.
//!
//! A duration is one or more `<integer><unit>` parts (units `ms`, `s`, `m`, `h`, `d`), summed;
//! surrounding whitespace is ignored. A bare number is refused rather than guessed (is `30`
//! seconds or minutes?). The same grammar serves `serve-demo --change-every` and `monitor --every`.
//!
//! ```
//! use std::time::Duration;
//! use scraipe::util::{format_duration, parse_duration};
//!
//! assert_eq!(parse_duration("5m")?, Duration::from_secs(300));
//! assert_eq!(parse_duration("1h30m")?, Duration::from_secs(5400));
//! assert_eq!(parse_duration("1500ms")?, Duration::from_millis(1500));
//! assert_eq!(parse_duration("0s")?, Duration::ZERO);
//! assert!(parse_duration("30").is_err());
//! assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
//! # Ok::<(), scraipe::util::DurationError>(())
//! ```

use std::fmt;
use std::time::Duration;

/// Why a duration did not parse; its message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    input: String,
    problem: &'static str,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid duration {:?}: {} (expected e.g. 30s, 5m, 2h, 1500ms, 1h30m)",
            self.input, self.problem
        )
    }
}

impl std::error::Error for DurationError {}

/// Parses a duration such as `30s`, `5m`, `2h`, `1d`, `1500ms` or `1h30m` (see the
/// [module docs](self)).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let fail = |problem| DurationError {
        input: text.to_string(),
        problem,
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(fail("it is empty"));
    }
    let mut total_ms: u64 = 0;
    let mut rest = s.as_bytes();
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(fail("a number must come before each unit"));
        }
        let mut value: u64 = 0;
        for &d in &rest[..digits] {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
                .ok_or_else(|| fail("the number is too large"))?;
        }
        rest = &rest[digits..];
        let letters = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        let per_unit_ms: u64 = match &rest[..letters] {
            b"ms" => 1,
            b"s" => 1_000,
            b"m" => 60_000,
            b"h" => 3_600_000,
            b"d" => 86_400_000,
            b"" => return Err(fail("a unit is missing (ms, s, m, h or d)")),
            _ => return Err(fail("unknown unit (use ms, s, m, h or d)")),
        };
        rest = &rest[letters..];
        total_ms = value
            .checked_mul(per_unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| fail("the duration is too large"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration in the grammar [`parse_duration`] reads, largest units first, at
/// millisecond precision: `1h30m`, `45s`, `1500ms` → `1s500ms`, zero → `0s`.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        let cases = [
            ("30s", 30_000),
            ("5m", 300_000),
            ("2h", 7_200_000),
            ("1d", 86_400_000),
            ("0s", 0),
            ("0ms", 0),
            ("1500ms", 1_500),
            ("1h30m", 5_400_000),
            ("1m1s1ms", 61_001),
            (" 45s\n", 45_000),
            ("007s", 7_000),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
    }

    #[test]
    fn refused_forms() {
        for text in [
            "",
            " ",
            "30",
            "s",
            "5 m",
            "-5s",
            "1.5h",
            "5min",
            "5M",
            "10x",
            "h1",
            "1h 30m",
            "99999999999999999999s",
            "18446744073709551615d",
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(
                err.to_string().contains("expected e.g. 30s"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn format_round_trips() {
        for ms in [
            0u64, 1, 999, 1_000, 1_500, 59_999, 60_000, 5_400_000, 90_061_001,
        ] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{ms}");
        }
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    }
}
