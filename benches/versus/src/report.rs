//! Rows of the comparison table, printed as markdown and written as JSON.

use crate::stats::Runs;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub group: &'static str,
    pub bench: String,
    pub unit: &'static str,
    pub ours: Runs,
    pub rival: String,
    /// `None` when the rival could not be measured here (the note says why).
    pub theirs: Option<Runs>,
    pub better: Better,
    pub note: String,
}

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a >= 100_000.0 {
        // thousands separators
        let s = format!("{:.0}", v);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 && c != '-' {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn cell(r: &Runs) -> String {
    format!(
        "{} [{}–{}]",
        fmt_num(r.median()),
        fmt_num(r.min()),
        fmt_num(r.max())
    )
}

impl Row {
    pub fn ratio(&self) -> Option<f64> {
        self.theirs
            .as_ref()
            .map(|t| self.ours.median() / t.median())
    }
}

pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| group | bench | unit | scraipe | rival | rival's | ours/theirs | better |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let theirs = r
            .theirs
            .as_ref()
            .map(cell)
            .unwrap_or_else(|| format!("skipped: {}", r.note));
        let ratio = r
            .ratio()
            .map(|x| format!("{x:.2}"))
            .unwrap_or_else(|| "-".into());
        let better = match r.better {
            Better::Lower => "lower",
            Better::Higher => "higher",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.group,
            r.bench,
            r.unit,
            cell(&r.ours),
            r.rival,
            theirs,
            ratio,
            better
        ));
    }
    out
}

pub fn json(rows: &[Row]) -> serde_json::Value {
    serde_json::Value::Array(
        rows.iter()
            .map(|r| {
                serde_json::json!({
                    "group": r.group,
                    "bench": r.bench,
                    "unit": r.unit,
                    "ours": r.ours.median(),
                    "rival": r.rival,
                    "theirs": r.theirs.as_ref().map(|t| t.median()),
                    "better": match r.better { Better::Lower => "lower", Better::Higher => "higher" },
                })
            })
            .collect(),
    )
}
