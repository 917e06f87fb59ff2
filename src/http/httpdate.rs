//! HTTP dates (RFC 9110 §5.6.7) and the looser cookie dates (RFC 6265 §5.1.1), to `SystemTime`.
//!
//! Only parsing is needed (Retry-After, Expires of cookies), so a few dozen lines do instead of a
//! date crate: the three HTTP formats and the "Wed, 21-Oct-2015 07:28:00 GMT" of old cookies are
//! all "some tokens holding day, month name, year and hh:mm:ss", which is how RFC 6265 reads them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses an IMF-fixdate, RFC 850 or asctime date, or a cookie date. `None` if it is not one.
pub(crate) fn parse(text: &str) -> Option<SystemTime> {
    let (mut day, mut month, mut year, mut time) = (None, None, None, None);
    for token in text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .filter(|t| !t.is_empty())
    {
        if time.is_none() && token.contains(':') {
            let mut parts = token.split(':').map(|p| p.parse::<u64>().ok());
            let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
            if h > 23 || m > 59 || s > 60 {
                return None;
            }
            time = Some(h * 3600 + m * 60 + s.min(59));
        } else if month.is_none() && token.len() >= 3 && token.as_bytes()[0].is_ascii_alphabetic() {
            let lower = token[..3].to_ascii_lowercase();
            month = [
                "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
            ]
            .iter()
            .position(|m| *m == lower)
            .map(|m| m as u64 + 1);
        } else if token.bytes().all(|b| b.is_ascii_digit()) {
            let n: u64 = token.parse().ok()?;
            if day.is_none() && token.len() <= 2 {
                day = Some(n);
            } else if year.is_none() && (token.len() == 2 || token.len() == 4) {
                // Two-digit years (RFC 850): 70-99 are 19xx, 00-69 are 20xx (RFC 6265 §5.1.1).
                year = Some(match n {
                    0..=69 if token.len() == 2 => n + 2000,
                    70..=99 if token.len() == 2 => n + 1900,
                    _ => n,
                });
            }
        }
    }
    let (day, month, year, time) = (day?, month?, year?, time?);
    if !(1..=31).contains(&day) || year < 1601 {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    let secs = days.checked_mul(86400)?.checked_add(time)?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm); `None` before the epoch.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let y = if month <= 2 { year - 1 } else { year } as i64;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(t: SystemTime) -> u64 {
        t.duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn the_three_http_formats_and_cookie_dates() {
        // 1994-11-06 08:49:37 UTC = 784111777
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06-Nov-1994 08:49:37 GMT",
        ] {
            assert_eq!(parse(text).map(secs), Some(784_111_777), "{text}");
        }
        assert_eq!(parse("Thu, 01 Jan 1970 00:00:00 GMT").map(secs), Some(0));
        assert_eq!(
            parse("Tue, 29 Feb 2028 23:59:59 GMT").map(secs),
            Some(1_835_481_599)
        );
        for bad in [
            "",
            "120",
            "soon",
            "Sun, 06 Nov 1994",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:00:00 GMT",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
