//! The lessons' command line and `-- COMMAND`, on this machine: what they
//! refuse, and the exit codes, checked before any BPF is loaded (so the
//! answers are the same on every kernel).

use std::process::{Command, Output};

use tests::binary;

const LESSONS: [&str; 2] = ["lesson-02", "lesson-03"];

fn run(lesson: &str, args: &[&str]) -> Output {
    let output = Command::new(binary(lesson))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {lesson}: {e}"));
    eprintln!(
        "{lesson} {args:?}: {:?}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The run failed with `code`, one `error:` line containing `wanted`, and nothing else.
fn assert_one_error(output: &Output, code: i32, wanted: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{stderr}");
    for want in wanted {
        assert!(errors[0].contains(want), "{want:?} missing in:\n{stderr}");
    }
    assert!(!stderr.contains("running the command"), "{stderr}");
    assert!(!stderr.contains("attached"), "{stderr}");
    assert!(output.stdout.is_empty(), "{stderr}");
    errors[0].to_string()
}

#[test]
#[ignore = "needs the lesson binaries; run by `cargo xtask test`"]
fn a_command_that_cannot_start_exits_127_or_126_before_loading() {
    for lesson in LESSONS {
        let missing = run(lesson, &["--", "/no/such/command", "arg"]);
        assert_one_error(&missing, 127, &["/no/such/command does not exist"]);
        let typo = run(lesson, &["--", "no-such-command-for-unlink-lab"]);
        assert_one_error(&typo, 127, &["not found in PATH"]);
        let not_executable = run(lesson, &["--", "/etc/passwd"]);
        assert_one_error(
            &not_executable,
            126,
            &["/etc/passwd is not executable", "chmod +x"],
        );
    }
}

#[test]
#[ignore = "needs the lesson binaries; run by `cargo xtask test`"]
fn bad_flag_values_are_usage_errors() {
    // A pid that just became free: a process that has exited and been reaped.
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id().to_string();
    gone.wait().unwrap();
    for lesson in LESSONS {
        let empty = run(lesson, &["--function", ""]);
        assert_one_error(&empty, 2, &["--function", "the name is empty"]);
        let spaced = run(lesson, &["--function", "do unlinkat"]);
        assert_one_error(&spaced, 2, &["--function", "only letters, digits"]);

        let negative = run(lesson, &["--pid", "-1"]);
        let line = assert_one_error(&negative, 2, &["--pid", "from 1 up"]);
        // clap's own tip, `-- -1`, would make -1 the command.
        let stderr = String::from_utf8_lossy(&negative.stderr);
        assert!(!stderr.contains("-- -1"), "{line}\n{stderr}");

        let missing = run(lesson, &["--pid", &gone_pid]);
        assert_one_error(
            &missing,
            2,
            &[&format!("no process has pid {gone_pid}"), "pgrep"],
        );
    }
}

#[test]
#[ignore = "needs the lesson binaries; run by `cargo xtask test`"]
fn help_says_who_runs_the_command() {
    for lesson in LESSONS {
        let output = run(lesson, &["--help"]);
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success());
        assert!(help.contains("--as-root"), "{help}");
        assert!(
            help.contains("Under sudo it runs as the user who ran sudo"),
            "{help}"
        );
        assert!(help.contains("killed if the lesson dies"), "{help}");
    }
}
