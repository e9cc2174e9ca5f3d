//! `--output-type json`: stdout is one JSON object per line, each with
//! azcopy's report fields, the last one the final summary; nothing else.

mod common;

use serde_json::Value;

use common::tree::load_ok;

const FIELDS: [&str; 11] = [
    "bytes_completed",
    "elapsed",
    "files_completed_failed",
    "files_completed_success",
    "files_pending",
    "files_skipped",
    "files_total",
    "pct_complete",
    "phase",
    "throughput_Mbps",
    "time_eta",
];

#[test]
fn json_output_is_one_report_per_line_then_a_summary() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    // Incompressible bytes (a xorshift sequence), so that the rate cap
    // applies to all of them.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for d in 0..4 {
        let dir = src.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for f in 0..25 {
            let body: Vec<u8> = (0..40_000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            std::fs::write(dir.join(format!("f{f}")), body).expect("write");
        }
    }
    let bytes: u64 = 4 * 25 * 40_000;
    // The rate cap (8 Mbit/s: 1 MB/s for 4 MB) keeps the load running for
    // several report intervals, so progress lines appear before the summary.
    let out = load_ok(
        &src,
        &tmp.path().join("container"),
        &tmp.path().join("state"),
        &["--output-type", "json", "--cap-mbps", "8"],
    );
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let lines: Vec<&str> = stdout.lines().collect();
    // Reports come every 2 s; the capped load takes 4 s or more.
    assert!(
        lines.len() >= 3,
        "expected progress lines and a summary:\n{stdout}"
    );
    let reports: Vec<Value> = lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}\nstdout:\n{stdout}"));
            assert!(v.is_object(), "not an object: {l}");
            for f in FIELDS {
                assert!(v.get(f).is_some(), "{f} missing in {l}");
            }
            for f in FIELDS.iter().filter(|f| **f != "phase") {
                assert!(v[f].is_number(), "{f} is not a number in {l}");
            }
            assert!(v["phase"].is_string(), "phase is not a string in {l}");
            v
        })
        .collect();
    let (last, progress) = reports.split_last().expect("lines");
    for p in progress {
        assert!(p.get("final").is_none(), "a progress line says final: {p}");
        let pct = p["pct_complete"].as_f64().unwrap_or(-1.0);
        assert!((0.0..=100.0).contains(&pct), "pct_complete {pct}");
    }
    assert_eq!(last["final"], Value::Bool(true), "{last}");
    assert_eq!(last["job_status"], "Completed", "{last}");
    // 100 files, 4 directories and the root.
    assert_eq!(last["files_total"], 105, "{last}");
    assert_eq!(last["files_completed_success"], 105, "{last}");
    assert_eq!(last["files_completed_failed"], 0, "{last}");
    assert_eq!(last["files_pending"], 0, "{last}");
    assert_eq!(last["bytes_completed"], bytes, "{last}");
    assert_eq!(last["pct_complete"], 100.0, "{last}");
    assert_eq!(last["phase"], "DONE", "{last}");
}
