//! Rows of the comparison table; the JSON document a run writes; the markdown printed from that
//! JSON (on stdout after a run, and for the README with `--readme-table FILE.json`).
//!
//! The JSON is the single source: the README table is rendered from it, never typed by hand.

use serde_json::{json, Value};

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
    /// CPU time (user+sys of the whole process, all threads) per operation, in `unit`:
    /// ours, and the rival's when measured.
    pub cpu: Option<(Runs, Option<Runs>)>,
}

impl Row {
    pub fn new(
        group: &'static str,
        bench: impl Into<String>,
        unit: &'static str,
        ours: Runs,
        rival: impl Into<String>,
        theirs: Option<Runs>,
        better: Better,
    ) -> Row {
        Row {
            group,
            bench: bench.into(),
            unit,
            ours,
            rival: rival.into(),
            theirs,
            better,
            note: String::new(),
            cpu: None,
        }
    }

    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }

    pub fn cpu(mut self, ours: Runs, theirs: Option<Runs>) -> Row {
        self.cpu = Some((ours, theirs));
        self
    }

    /// Prints the row's headline to stderr (progress while the run goes on).
    pub fn log(&self) {
        let theirs = self
            .theirs
            .as_ref()
            .map(|t| fmt_num(t.value()))
            .unwrap_or_else(|| format!("skipped ({})", self.note));
        eprintln!(
            "  {} {}: ours {} {}, {} {theirs}",
            self.group,
            self.bench,
            fmt_num(self.ours.value()),
            self.unit,
            self.rival
        );
    }
}

fn runs_json(r: &Runs) -> Value {
    json!({
        "value": finite(r.value()),
        "median": finite(r.median()),
        "min": finite(r.min()),
        "max": finite(r.max()),
        "runs": r.per_run.len(),
        "per_run": r.per_run.iter().map(|v| finite(*v)).collect::<Vec<_>>(),
        "pooled_over_samples": r.pooled.map(|_| r.samples),
    })
}

fn finite(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}

/// Versions of the Rust rivals, read from the workspace's Cargo.lock at compile time.
pub fn crate_versions() -> Vec<(&'static str, String)> {
    const LOCK: &str = include_str!("../../../Cargo.lock");
    ["tokio", "reqwest", "hyper", "hyper-util", "mio"]
        .into_iter()
        .filter_map(|name| lock_version(LOCK, name).map(|v| (name, v)))
        .collect()
}

fn lock_version(lock: &str, name: &str) -> Option<String> {
    let needle = format!("name = \"{name}\"\n");
    let at = lock.find(&needle)? + needle.len();
    let line = lock[at..].lines().next()?;
    Some(
        line.strip_prefix("version = \"")?
            .trim_end_matches('"')
            .to_string(),
    )
}

/// Which entry of the `versions` map a rival label refers to.
fn rival_version(rival: &str, versions: &serde_json::Map<String, Value>) -> Value {
    let get = |k: &str| versions.get(k).and_then(Value::as_str).unwrap_or("?");
    let v = if rival.contains("Python") {
        format!(
            "Python {}, scraipe {}, aiohttp {}",
            get("python"),
            get("scraipe (Python)"),
            get("aiohttp")
        )
    } else if rival.contains("reqwest") {
        format!("reqwest {}, tokio {}", get("reqwest"), get("tokio"))
    } else if rival.contains("hyper") {
        format!(
            "hyper {}, hyper-util {}, tokio {}",
            get("hyper"),
            get("hyper-util"),
            get("tokio")
        )
    } else if rival.contains("tokio") {
        format!("tokio {}", get("tokio"))
    } else if rival.contains("wrk") {
        format!("wrk {}", get("wrk"))
    } else if rival.contains("timerfd") || rival.contains("std") {
        format!("Linux {}", get("kernel"))
    } else {
        return Value::Null;
    };
    Value::String(v)
}

/// The whole run as one JSON document: `meta` (machine, mode, versions) and `rows`.
pub fn document(rows: &[Row], meta: Value) -> Value {
    let versions = meta["versions"].as_object().cloned().unwrap_or_default();
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let ratio = r.theirs.as_ref().map(|t| r.ours.value() / t.value());
            json!({
                "group": r.group,
                "bench": r.bench,
                "unit": r.unit,
                "better": match r.better { Better::Lower => "lower", Better::Higher => "higher" },
                "ours": runs_json(&r.ours),
                "rival": r.rival,
                "rival_version": rival_version(&r.rival, &versions),
                "theirs": r.theirs.as_ref().map(runs_json),
                "ratio": ratio.map(finite),
                "cpu_per_op": r.cpu.as_ref().map(|(o, t)| json!({
                    "unit": format!("CPU {}", r.unit),
                    "ours": runs_json(o),
                    "theirs": t.as_ref().map(runs_json),
                })),
                "note": r.note,
            })
        })
        .collect();
    json!({ "schema": 2, "meta": meta, "rows": rows })
}

pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a >= 10_000.0 {
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

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// "value [min–max]" of a `runs_json` object; "-" when absent.
fn cell(v: &Value) -> String {
    if v.is_null() {
        return "-".into();
    }
    format!(
        "{} [{}–{}]",
        fmt_num(num(&v["value"])),
        fmt_num(num(&v["min"])),
        fmt_num(num(&v["max"]))
    )
}

/// The markdown table of the rows of `doc` that `keep` accepts.
pub fn markdown(doc: &Value, keep: impl Fn(&Value) -> bool) -> String {
    let mut out = String::from(
        "| group | bench | unit | scraipe | rival | rival's | ours/theirs | better | CPU/op ours | CPU/op rival's |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in doc["rows"].as_array().into_iter().flatten() {
        if !keep(r) {
            continue;
        }
        let theirs = if r["theirs"].is_null() {
            format!("skipped: {}", r["note"].as_str().unwrap_or(""))
        } else {
            cell(&r["theirs"])
        };
        let ratio = r["ratio"]
            .as_f64()
            .map(|x| format!("{x:.2}"))
            .unwrap_or_else(|| "-".into());
        let cpu = &r["cpu_per_op"];
        let (cpu_ours, cpu_theirs) = if cpu.is_null() {
            ("-".to_string(), "-".to_string())
        } else {
            (cell(&cpu["ours"]), cell(&cpu["theirs"]))
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r["group"].as_str().unwrap_or(""),
            r["bench"].as_str().unwrap_or(""),
            r["unit"].as_str().unwrap_or(""),
            cell(&r["ours"]),
            r["rival"].as_str().unwrap_or(""),
            theirs,
            ratio,
            r["better"].as_str().unwrap_or(""),
            cpu_ours,
            cpu_theirs,
        ));
    }
    out
}

/// Rows whose "rival" is a reference point rather than a competitor: wrk (a load generator)
/// and the OS floor (no runtime at all).
fn is_reference(r: &Value) -> bool {
    r["rival"]
        .as_str()
        .is_some_and(|x| x.starts_with("wrk") || x.contains("no runtime"))
}

/// Is ours worse than a competitor on this row (by the row's own direction)?
fn is_loss(r: &Value) -> bool {
    if is_reference(r) {
        return false;
    }
    match (r["ratio"].as_f64(), r["better"].as_str()) {
        (Some(x), Some("lower")) => x > 1.0,
        (Some(x), Some("higher")) => x < 1.0,
        _ => false,
    }
}

/// Rows the README leaves to the JSON: HTTP clients with two workers pinned to one core.
fn in_readme(r: &Value) -> bool {
    !(r["group"] == "http"
        && r["bench"]
            .as_str()
            .is_some_and(|b| b.contains("(2w client)")))
}

pub const README_BEGIN: &str = "<!-- versus-table:begin (generated by `versus --readme-table`) -->";
pub const README_END: &str = "<!-- versus-table:end -->";

/// The README's benchmark section body, rendered from a run's JSON document.
pub fn readme_section(doc: &Value, json_path: &str) -> String {
    let m = &doc["meta"];
    let versions = m["versions"]
        .as_object()
        .map(|v| {
            v.iter()
                .map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or("?")))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let mut out = format!(
        "Measured {date} on {cpus} × {cpu}, with `cargo run --release -p versus -- {args}` \
         ({took:.0} s): each cell is the median of {runs} runs [min–max over runs] unless its \
         bench says p99 (then: p99 over all samples of all runs [min–max of per-run p99s]); both \
         sides in the same run, alternating. CPU/op is user+sys time of the whole process (all \
         threads, getrusage) per operation, in the row's unit. Versions: {versions}. What each row \
         measures: [BENCHMARKS.md](BENCHMARKS.md); every row with per-run figures: \
         `{json_path}`.\n\n",
        date = m["date"].as_str().unwrap_or("?"),
        cpus = m["cpus"],
        cpu = m["cpu"].as_str().unwrap_or("?"),
        args = m["args"].as_str().unwrap_or(""),
        took = num(&m["took_s"]),
        runs = m["runs_per_cell"],
    );
    let load = &m["load_average_1min"];
    if let (Some(start), Some(end)) = (load["start"].as_f64(), load["end"].as_f64()) {
        let cpus = m["cpus"].as_f64().unwrap_or(1.0);
        out.push_str(&format!(
            "Machine load during the run (1-min load average, start / end): {start:.1} / {end:.1} on {cpus} CPUs{}.\n\n",
            if start.max(end) > cpus {
                " — the machine was busy with other work: treat these figures as noisy and rerun on a quiet machine before quoting them"
            } else {
                ""
            }
        ));
    }
    if let Some(steal) = m["steal_percent"].as_f64() {
        out.push_str(&format!(
            "Hypervisor steal during the run (CPU time the host gave other guests): {steal:.1} %{}.\n\n",
            if steal > crate::steal::NOISY_PERCENT {
                " — treat these figures as noisy and rerun when the host is quieter before quoting them"
            } else {
                ""
            }
        ));
    }
    out.push_str(&markdown(doc, in_readme));
    let losses: Vec<String> = doc["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| in_readme(r) && is_loss(r))
        .map(|r| {
            format!(
                "{} / {} vs {} ({:.2})",
                r["group"].as_str().unwrap_or(""),
                r["bench"].as_str().unwrap_or(""),
                r["rival"].as_str().unwrap_or(""),
                num(&r["ratio"])
            )
        })
        .collect();
    let missed: Vec<String> = doc["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["group"] == "runtime" && r["ratio"].as_f64().is_some_and(|x| x > 0.8))
        .map(|r| {
            format!(
                "{} vs {} ({:.2})",
                r["bench"].as_str().unwrap_or(""),
                r["rival"].as_str().unwrap_or(""),
                num(&r["ratio"])
            )
        })
        .collect();
    out.push('\n');
    if losses.is_empty() {
        out.push_str("Where we lose in this run: nowhere in the rows above.\n");
    } else {
        out.push_str(&format!(
            "Where we lose in this run ({} rows, ratio ours/theirs; wrk and the OS floor are references, not rivals):\n\n",
            losses.len()
        ));
        for l in &losses {
            out.push_str(&format!("* {l}\n"));
        }
    }
    if !missed.is_empty() {
        out.push_str("\nRuntime rows above our 0.8× target:\n\n");
        for m in &missed {
            out.push_str(&format!("* {m}\n"));
        }
    }
    out
}

/// `readme` with the text between the generated-section markers replaced by `section`.
pub fn replace_section(readme: &str, section: &str) -> Result<String, String> {
    let begin = readme
        .find(README_BEGIN)
        .ok_or_else(|| format!("README has no line {README_BEGIN:?}"))?;
    let end = readme
        .find(README_END)
        .filter(|e| *e > begin)
        .ok_or_else(|| format!("README has no line {README_END:?} after the begin marker"))?;
    Ok(format!(
        "{}{README_BEGIN}\n\n{}\n{}",
        &readme[..begin],
        section.trim_end(),
        &readme[end..]
    ))
}

/// (group, bench, rival) → ratio ours/theirs of every row of a versus JSON: schema 2, or the
/// bare array of rows written before it (`ours` and `theirs` as plain medians).
fn ratios(doc: &Value) -> Vec<((String, String, String), f64)> {
    let rows = doc["rows"].as_array().or_else(|| doc.as_array());
    rows.into_iter()
        .flatten()
        .filter_map(|r| {
            let ratio = r["ratio"].as_f64().or_else(|| {
                let (o, t) = (r["ours"].as_f64()?, r["theirs"].as_f64()?);
                Some(o / t)
            })?;
            let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
            Some(((s("group"), s("bench"), s("rival")), ratio))
        })
        .collect()
}

/// Markdown: how every ratio ours/theirs moved between two runs (rows matched by group, bench
/// and rival), then the rows found in only one of them.
pub fn compare(before: &Value, after: &Value) -> String {
    let old = ratios(before);
    let new = ratios(after);
    let mut out = String::from(
        "| group | bench | rival | ratio before | ratio after | change |\n|---|---|---|---|---|---|\n",
    );
    for (key, b) in &old {
        if let Some((_, a)) = new.iter().find(|(k, _)| k == key) {
            out.push_str(&format!(
                "| {} | {} | {} | {b:.2} | {a:.2} | {:+.0} % |\n",
                key.0,
                key.1,
                key.2,
                (a / b - 1.0) * 100.0
            ));
        }
    }
    let only = |rows: &[((String, String, String), f64)],
                other: &[((String, String, String), f64)]| {
        rows.iter()
            .filter(|(k, _)| !other.iter().any(|(o, _)| o == k))
            .map(|((g, b, r), x)| format!("{g} / {b} vs {r} ({x:.2})"))
            .collect::<Vec<_>>()
    };
    for (label, rows) in [
        ("only before", only(&old, &new)),
        ("only after", only(&new, &old)),
    ] {
        if !rows.is_empty() {
            out.push_str(&format!(
                "\n{label} ({}): {}\n",
                rows.len(),
                rows.join("; ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Latencies;

    fn runs(v: &[f64]) -> Runs {
        Runs {
            per_run: v.to_vec(),
            ..Runs::default()
        }
    }

    fn doc() -> Value {
        let mut lat = Latencies::default();
        lat.add_run(vec![1.0; 100], 3.0);
        lat.add_run(vec![2.0; 100], 4.0);
        let rows = vec![
            Row::new(
                "runtime",
                "spawn_many_local (2w)",
                "ns/op",
                runs(&[100.0, 90.0, 110.0]),
                "tokio multi_thread 2w",
                Some(runs(&[200.0, 210.0, 190.0])),
                Better::Lower,
            )
            .cpu(runs(&[150.0]), Some(runs(&[300.0]))),
            Row::new(
                "bridge",
                "spaced, p99",
                "µs",
                lat.p99(),
                "tokio multi_thread 1w",
                Some(runs(&[1.5])),
                Better::Lower,
            ),
            Row::new(
                "http",
                "GET 1 KiB, nginx (2w client)",
                "req/s",
                runs(&[1.0]),
                "hyper",
                Some(runs(&[2.0])),
                Better::Higher,
            ),
            Row::new(
                "http",
                "GET 1 KiB, nginx (1w client)",
                "req/s",
                runs(&[1.0]),
                "wrk -t1 -c64 (reference, not a ceiling)",
                Some(runs(&[2.0])),
                Better::Higher,
            ),
            Row::new(
                "e2e",
                "scrape",
                "pages/s",
                runs(&[10.0]),
                "Python Scraipe",
                None,
                Better::Higher,
            )
            .note("python3 not installed"),
        ];
        let meta = json!({"date": "2026-12-01", "cpus": 2, "cpu": "Test CPU", "args": "--quick",
            "took_s": 12.0, "runs_per_cell": 3, "load_average_1min": {"start": 5.0, "end": 0.5},
            "versions": {"tokio": "1.54.1", "python": "3.11", "scraipe (Python)": "0.1.73", "aiohttp": "3.14"}});
        document(&rows, meta)
    }

    #[test]
    fn json_keeps_min_max_runs_and_rival_versions() {
        let d = doc();
        let r = &d["rows"][0];
        assert_eq!(r["ours"]["value"], 100.0);
        assert_eq!(r["ours"]["min"], 90.0);
        assert_eq!(r["ours"]["max"], 110.0);
        assert_eq!(r["ours"]["runs"], 3);
        assert_eq!(r["theirs"]["per_run"].as_array().unwrap().len(), 3);
        assert_eq!(r["ratio"], 0.5);
        assert_eq!(r["rival_version"], "tokio 1.54.1");
        assert_eq!(r["cpu_per_op"]["ours"]["value"], 150.0);
        // The pooled p99 is over all 200 samples, with per-run p99s as the range.
        let p = &d["rows"][1];
        assert_eq!(p["ours"]["value"], 2.0);
        assert_eq!(p["ours"]["pooled_over_samples"], 200);
        assert_eq!(p["ours"]["min"], 1.0);
        assert!(d["rows"][4]["rival_version"]
            .as_str()
            .unwrap()
            .contains("scraipe 0.1.73"));
    }

    #[test]
    fn readme_section_is_rendered_from_the_json() {
        let d = doc();
        let s = readme_section(&d, "benches/versus/x.json");
        assert!(s.contains(
            "| runtime | spawn_many_local (2w) | ns/op | 100 [90.0–110] | tokio multi_thread 2w | 200 [190–210] | 0.50 | lower | 150 [150–150] | 300 [300–300] |"
        ));
        assert!(s.contains("skipped: python3 not installed"));
        assert!(
            !s.contains("Hypervisor steal"),
            "a run from before steal was measured says nothing about it"
        );
        let mut noisy = d.clone();
        noisy["meta"]["steal_percent"] = json!(7.5);
        assert!(readme_section(&noisy, "x.json")
            .contains("Hypervisor steal during the run (CPU time the host gave other guests): 7.5 % — treat these figures as noisy"));
        noisy["meta"]["steal_percent"] = json!(0.4);
        let quiet = readme_section(&noisy, "x.json");
        assert!(quiet.contains("other guests): 0.4 %.\n"), "{quiet}");
        assert!(
            !s.contains("(2w client)"),
            "2-worker HTTP rows stay in the JSON"
        );
        assert!(s.contains("Where we lose in this run (1 rows, ratio ours/theirs;"));
        assert!(s.contains("\n\n* bridge / spaced, p99"));
        assert!(s.contains("| wrk -t1 -c64 (reference, not a ceiling) |"));
        assert!(!s.contains("* http /"), "wrk is a reference, not a loss");
        assert!(s.contains("tokio 1.54.1"));
        assert!(s.contains("5.0 / 0.5 on 2 CPUs — the machine was busy"));
        assert!(!s.contains("above our 0.8× target"));
    }

    #[test]
    fn readme_section_replaces_only_the_marked_part() {
        let readme =
            format!("# T\n\nintro\n\n{README_BEGIN}\n\nold table\n\n{README_END}\n\nRerun: ...\n");
        let new = replace_section(&readme, "new table\n").unwrap();
        assert_eq!(
            new,
            format!("# T\n\nintro\n\n{README_BEGIN}\n\nnew table\n{README_END}\n\nRerun: ...\n")
        );
        // Idempotent.
        assert_eq!(replace_section(&new, "new table\n").unwrap(), new);
        assert!(replace_section("no markers", "x").is_err());
    }

    #[test]
    fn compare_lists_moved_ratios_old_and_new_formats() {
        let old = json!([
            {"group": "runtime", "bench": "spawn_many_local (2w)", "rival": "tokio multi_thread 2w", "ours": 100.0, "theirs": 200.0},
            {"group": "runtime", "bench": "gone", "rival": "tokio", "ours": 1.0, "theirs": 1.0}
        ]);
        let new = json!({"schema": 2, "rows": [
            {"group": "runtime", "bench": "spawn_many_local (2w)", "rival": "tokio multi_thread 2w", "ratio": 0.6},
            {"group": "bridge", "bench": "new", "rival": "tokio", "ratio": 2.0}
        ]});
        let c = compare(&old, &new);
        assert!(
            c.contains(
                "| runtime | spawn_many_local (2w) | tokio multi_thread 2w | 0.50 | 0.60 | +20 % |"
            ),
            "{c}"
        );
        assert!(c.contains("only before (1): runtime / gone vs tokio (1.00)"));
        assert!(c.contains("only after (1): bridge / new vs tokio (2.00)"));
    }

    #[test]
    fn versions_come_from_the_lock_file() {
        let v = crate_versions();
        assert!(v.iter().any(|(n, v)| *n == "tokio" && v.starts_with("1.")));
        assert_eq!(
            lock_version("name = \"a\"\nversion = \"1.2.3\"\n", "a").as_deref(),
            Some("1.2.3")
        );
    }
}
