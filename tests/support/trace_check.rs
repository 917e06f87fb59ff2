//! Checks of an exported scheduler trace (Chrome trace-event JSON), shared by the observatory
//! tests.
#![allow(dead_code)]

pub fn events(json: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(json).expect("the trace is JSON");
    v["traceEvents"].as_array().expect("traceEvents").clone()
}

/// The structural promises of the export: timestamps rise per thread, slices nest per thread,
/// every flow has exactly one start and one end (and its steps lie between them).
pub fn check_structure(evs: &[serde_json::Value]) {
    use std::collections::HashMap;
    let mut last_ts: HashMap<u64, f64> = HashMap::new();
    let mut open: HashMap<u64, Vec<f64>> = HashMap::new();
    let mut flows: HashMap<u64, (usize, usize, Vec<f64>)> = HashMap::new();
    for e in evs {
        if e["ph"] == "M" {
            continue;
        }
        let tid = e["tid"].as_u64().unwrap();
        let ts = e["ts"].as_f64().unwrap();
        let prev = last_ts.insert(tid, ts).unwrap_or(f64::MIN);
        assert!(
            ts >= prev,
            "time went back on thread {tid}: {prev} then {e}"
        );
        if e["ph"] == "X" {
            let end = ts + e["dur"].as_f64().unwrap();
            let stack = open.entry(tid).or_default();
            while stack.last().is_some_and(|&top| top <= ts) {
                stack.pop();
            }
            if let Some(&top) = stack.last() {
                assert!(end <= top, "slice {e} overlaps its parent ending at {top}");
            }
            stack.push(end);
        }
        if let Some(id) = e["id"].as_u64() {
            let f = flows.entry(id).or_default();
            match e["ph"].as_str().unwrap() {
                "s" => f.0 += 1,
                "f" => f.1 += 1,
                _ => f.2.push(ts),
            }
        }
    }
    for (id, (s, f, _)) in &flows {
        assert_eq!((*s, *f), (1, 1), "flow {id}");
    }
}
