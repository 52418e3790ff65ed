//! Helpers for the end-to-end tests: the workload, what it must produce, and
//! where the binaries under test are.

use std::path::PathBuf;

use serde_json::Value;
use xtask::vm::Arch;

/// The shell script every run executes as `-- sh -c WORKLOAD`; it exits 3.
pub const WORKLOAD: &str = include_str!("workload.sh");
pub const WORKLOAD_EXIT: i32 = 3;

/// What step N of the workload unlinks, as the lessons' JSON shows it.
pub struct ExpectedUnlink {
    pub filename: String,
    pub truncated: bool,
    pub ret: i64,
    pub errno: Option<&'static str>,
}

pub fn expected_unlinks() -> Vec<ExpectedUnlink> {
    let ok = |filename: &str| ExpectedUnlink {
        filename: filename.into(),
        truncated: false,
        ret: 0,
        errno: None,
    };
    // 200 d's, a slash, 100 f's: the lessons keep the first 255 bytes.
    let long_prefix = format!("{}/{}", "d".repeat(200), "f".repeat(54));
    vec![
        ok("a"),
        ok("with space"),
        ok("日本語.txt"),
        ok("new\\nline"),
        ok("bad\\xffname"),
        ExpectedUnlink {
            filename: long_prefix,
            truncated: true,
            ret: 0,
            errno: None,
        },
        ExpectedUnlink {
            filename: "missing".into(),
            truncated: false,
            ret: -2,
            errno: Some("ENOENT"),
        },
    ]
}

/// `WORKLOAD step pid` lines: the pid of each step's `unlink` process.
pub fn workload_pids(stdout: &str) -> Vec<u64> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("WORKLOAD "))
        .map(|rest| {
            let mut fields = rest.split_whitespace();
            let _step = fields.next();
            fields
                .next()
                .and_then(|pid| pid.parse().ok())
                .unwrap_or_else(|| panic!("bad workload line {rest:?}"))
        })
        .collect()
}

/// Check a `lesson --json -- sh -c WORKLOAD` run: the attached line, exactly
/// the workload's unlinks in order with their pids, names and return values,
/// and a summary with nothing lost and nothing skipped: 0 when `counts_skips`
/// is `Some(true)`, `null` (the kernel does not count them) when `Some(false)`,
/// either when `None` (a kernel outside the matrix).
pub fn check_json_run(stdout: &str, function: &str, probes: [&str; 2], counts_skips: Option<bool>) {
    let json: Vec<Value> = stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"))
        })
        .collect();
    let attached = json
        .first()
        .unwrap_or_else(|| panic!("no JSON output at all:\n{stdout}"));
    assert_eq!(attached["type"], "attached", "{stdout}");
    assert_eq!(attached["function"], function, "{stdout}");
    assert_eq!(attached["probes"], serde_json::json!(probes), "{stdout}");
    assert_eq!(attached["mode"], "ring_buffer");

    let pids = workload_pids(stdout);
    let expected = expected_unlinks();
    assert_eq!(
        pids.len(),
        expected.len(),
        "the workload did not run every step:\n{stdout}"
    );
    let unlinks: Vec<&Value> = json.iter().filter(|v| v["type"] == "unlink").collect();
    assert_eq!(
        unlinks.len(),
        expected.len(),
        "unlinks seen vs made:\n{stdout}"
    );
    let mut previous_start = 0;
    for ((event, want), pid) in unlinks.iter().zip(&expected).zip(&pids) {
        let context = format!("event {event} for {:?}", want.filename);
        assert_eq!(event["filename"], want.filename.as_str(), "{context}");
        assert_eq!(event["filename_truncated"], want.truncated, "{context}");
        assert_eq!(event["ret"], want.ret, "{context}");
        assert_eq!(event["errno"], serde_json::json!(want.errno), "{context}");
        assert_eq!(event["pid"], *pid, "{context}");
        assert_eq!(event["tid"], *pid, "{context}");
        assert_eq!(event["comm"], "unlink", "{context}");
        let start = event["start_ns"].as_u64().unwrap();
        assert!(start >= previous_start, "events out of order: {context}");
        previous_start = start;
        let latency = event["latency_ns"].as_u64().unwrap();
        assert!(
            latency > 0 && latency < 10_000_000_000,
            "implausible latency: {context}"
        );
        assert!(
            event["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{context}"
        );
    }
    let summary = json.last().unwrap();
    assert_eq!(summary["type"], "summary", "{stdout}");
    assert_eq!(summary["unlinks"], expected.len() as u64, "{stdout}");
    assert_eq!(summary["lost_events"], 0, "{stdout}");
    // Only the kretprobe lesson counts returns that never came: none here.
    match probes[0] {
        "kprobe" => assert_eq!(summary["returns_missed"], 0, "{stdout}"),
        _ => assert!(summary.get("returns_missed").is_none(), "{stdout}"),
    }
    let skipped = &summary["skipped_by_kernel"];
    match counts_skips {
        Some(true) => assert_eq!(skipped, 0, "{stdout}"),
        Some(false) => assert!(skipped.is_null(), "{stdout}"),
        None => assert!(*skipped == 0 || skipped.is_null(), "{stdout}"),
    }
}

/// The chapter's bpf_printk messages (without the trace_pipe prefix) for the
/// workload's first unlink and its failing one, `missing`.
pub fn chapter_messages(lesson: &str, first: u64, missing: u64) -> [String; 4] {
    match lesson {
        "lesson-02" => [
            format!("bpf_trace_printk: KPROBE ENTRY pid = {first}, filename = a"),
            format!("bpf_trace_printk: KPROBE EXIT: pid = {first}, ret = 0"),
            format!("bpf_trace_printk: KPROBE ENTRY pid = {missing}, filename = missing"),
            format!("bpf_trace_printk: KPROBE EXIT: pid = {missing}, ret = -2"),
        ],
        "lesson-03" => [
            format!("bpf_trace_printk: fentry: pid = {first}, filename = a"),
            format!("bpf_trace_printk: fexit: pid = {first}, filename = a, ret = 0"),
            format!("bpf_trace_printk: fentry: pid = {missing}, filename = missing"),
            format!("bpf_trace_printk: fexit: pid = {missing}, filename = missing, ret = -2"),
        ],
        other => panic!("unknown lesson {other}"),
    }
}

/// Check step 1's output (trace_pipe lines) while the workload ran: the
/// chapter's exact messages with the workload's real pids and file names.
pub fn check_step1_run(stdout: &str, lesson: &str) {
    let pids = workload_pids(stdout);
    assert_eq!(
        pids.len(),
        expected_unlinks().len(),
        "the workload did not run every step:\n{stdout}"
    );
    for line in &chapter_messages(lesson, pids[0], pids[6]) {
        assert!(
            stdout.lines().any(|l| l.ends_with(line.as_str())),
            "missing {line:?} in:\n{stdout}"
        );
    }
}

/// Check step 2's table while the workload ran: `PID COMM RET FILENAME` rows
/// for the workload's first unlink and its failing one.
pub fn check_step2_run(stdout: &str) {
    let pids = workload_pids(stdout);
    assert_eq!(
        pids.len(),
        expected_unlinks().len(),
        "the workload did not run every step:\n{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l == "PID     COMM              RET FILENAME"),
        "{stdout}"
    );
    for row in [
        format!("{:<7} {:<16} {:>4} a", pids[0], "unlink", 0),
        format!("{:<7} {:<16} {:>4} missing", pids[6], "unlink", -2),
    ] {
        assert!(
            stdout.lines().any(|l| l == row),
            "missing {row:?} in:\n{stdout}"
        );
    }
}

/// Check a `lesson --printk -- sh -c WORKLOAD` run: the chapter's own messages
/// for the first unlink (entry and exit) and the failed one.
pub fn check_printk_run(stdout: &str, lesson: &str) {
    let pids = workload_pids(stdout);
    assert_eq!(
        pids.len(),
        expected_unlinks().len(),
        "the workload did not run every step:\n{stdout}"
    );
    for line in &chapter_messages(lesson, pids[0], pids[6]) {
        assert!(
            stdout.lines().any(|l| l.ends_with(line.as_str())),
            "missing {line:?} in:\n{stdout}"
        );
    }
    let other_pids = stdout
        .lines()
        .filter(|l| l.contains("bpf_trace_printk: "))
        .filter(|l| !pids.iter().any(|pid| l.contains(&format!("pid = {pid},"))))
        .count();
    assert_eq!(
        other_pids, 0,
        "lines from processes outside the command:\n{stdout}"
    );
}

/// A binary built by `cargo build` (cargo xtask test builds them first).
pub fn binary(name: &str) -> PathBuf {
    binary_for(Arch::X86_64, name)
}

/// A binary built for `arch`: by `cargo build`, or for arm64 by
/// `cargo xtask build --arch arm64` (cargo xtask test builds both first).
pub fn binary_for(arch: Arch, name: &str) -> PathBuf {
    let (dir, build) = match arch {
        Arch::X86_64 => (
            xtask::workspace::target_dir().join("debug"),
            "cargo build --workspace",
        ),
        Arch::Arm64 => (
            xtask::workspace::target_dir()
                .join(arch.rust_target())
                .join("debug"),
            "cargo xtask build --arch arm64",
        ),
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it first with `{build}` (cargo xtask test does)",
        path.display()
    );
    path
}

/// The function the lessons must pick on each kernel of the matrix.
pub fn unlink_function(kernel: &str) -> &'static str {
    match kernel {
        "debian-7.2" => "filename_unlinkat",
        _ => "do_unlinkat",
    }
}

/// Whether the kernel counts the runs of the lesson's probes it skipped:
/// `recursion_misses` for fentry/fexit since 5.12, and for kprobes (with the
/// links' `missed`) since 6.7.
pub fn counts_skips(kernel: &str, lesson: &str) -> bool {
    match (kernel, lesson) {
        ("debian-5.10", _) | ("debian-6.1", "lesson-02") => false,
        ("debian-6.1" | "debian-6.12" | "debian-7.2", _) => true,
        _ => panic!("unknown kernel {kernel}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_pids_are_read_in_order() {
        assert_eq!(
            workload_pids("x\nWORKLOAD 0 17\n{..}\nWORKLOAD 1 18\n"),
            [17, 18]
        );
    }

    #[test]
    fn the_step_checkers_want_the_exact_formats() {
        let workload: String = (0..7)
            .map(|i| format!("WORKLOAD {i} {}\n", 100 + i))
            .collect();
        let good = format!(
            "{workload}rm-1 [000] d..3 1.0: bpf_trace_printk: KPROBE ENTRY pid = 100, filename = a\n\
             rm-1 [000] d..3 1.0: bpf_trace_printk: KPROBE EXIT: pid = 100, ret = 0\n\
             rm-1 [000] d..3 1.0: bpf_trace_printk: KPROBE ENTRY pid = 106, filename = missing\n\
             rm-1 [000] d..3 1.0: bpf_trace_printk: KPROBE EXIT: pid = 106, ret = -2\n"
        );
        check_step1_run(&good, "lesson-02");
        // The seed's transcript format, "KPROBE EXIT: ret = 0", is not the program's.
        let bad = good.replace("EXIT: pid = 100, ret", "EXIT: ret");
        assert!(std::panic::catch_unwind(|| check_step1_run(&bad, "lesson-02")).is_err());
        let table = format!(
            "{workload}PID     COMM              RET FILENAME\n\
             100     unlink              0 a\n\
             106     unlink             -2 missing\n"
        );
        check_step2_run(&table);
        let wrong_ret = table.replace(" -2 missing", "  0 missing");
        assert!(std::panic::catch_unwind(|| check_step2_run(&wrong_ret)).is_err());
    }

    #[test]
    fn the_checker_rejects_a_wrong_run() {
        let attached = r#"{"type":"attached","function":"do_unlinkat","probes":["kprobe","kretprobe"],"mode":"ring_buffer"}"#;
        let summary = r#"{"type":"summary","unlinks":0,"lost_events":0,"skipped_by_kernel":0}"#;
        let run = format!("{attached}\n{summary}\n");
        let result = std::panic::catch_unwind(|| {
            check_json_run(&run, "do_unlinkat", ["kprobe", "kretprobe"], Some(true))
        });
        assert!(
            result.is_err(),
            "a run without the workload's unlinks must fail the check"
        );
    }
}
