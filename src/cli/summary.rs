//! The one-line run summary, e.g.
//! `scraped 4,980/5,000 ok, analyzed 4,980 in 3.2 s (1,560 pages/s); 20 failed: 12 timeout, 8 status 404`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::output::Row;

#[derive(Debug, Default)]
pub struct Summary {
    pub total: usize,
    pub ok: usize,
    pub analyzed: usize,
    pub analysis_failed: usize,
    pub failures: BTreeMap<String, usize>,
}

impl Summary {
    pub fn add(&mut self, row: &Row) {
        self.total += 1;
        match row.error_kind() {
            None => self.ok += 1,
            Some(kind) => *self.failures.entry(kind.to_string()).or_default() += 1,
        }
        match row.analysis_success.as_ref().and_then(|v| v.as_bool()) {
            Some(true) => self.analyzed += 1,
            Some(false) => self.analysis_failed += 1,
            None => {}
        }
    }

    pub fn line(&self, elapsed: Duration, with_analysis: bool) -> String {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.total as f64 / secs
        } else {
            0.0
        };
        let mut s = format!("scraped {}/{} ok", group(self.ok), group(self.total));
        if with_analysis {
            s.push_str(&format!(", analyzed {}", group(self.analyzed)));
            if self.analysis_failed > 0 {
                s.push_str(&format!(
                    " ({} analyses failed)",
                    group(self.analysis_failed)
                ));
            }
        }
        s.push_str(&format!(
            " in {secs:.1} s ({} pages/s)",
            group(rate.round() as usize)
        ));
        let failed = self.total - self.ok;
        if failed > 0 {
            let mut kinds: Vec<(&String, &usize)> = self.failures.iter().collect();
            kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let parts: Vec<String> = kinds
                .iter()
                .map(|(k, n)| format!("{} {k}", group(**n)))
                .collect();
            s.push_str(&format!("; {} failed: {}", group(failed), parts.join(", ")));
        }
        s
    }
}

/// 1234567 → "1,234,567".
pub fn group(n: usize) -> String {
    scraipe::util::group_digits(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1_234_567), "1,234,567");
    }
}
