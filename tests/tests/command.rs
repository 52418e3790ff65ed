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

/// In one boot of Debian's 6.12, where both lessons load and attach: the
/// load errors of item 9, and the command's user and lifetime (items 6, 7).
const IN_THE_VM: &str = r#"
mkdir -p /etc
echo 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >> /etc/passwd
echo 'nogroup:x:65534:' >> /etc/group
mkdir -m 777 /tmp/shared

# Item 9: EACCES from the verifier, ENOMEM from a 1 GiB ring buffer in a 1 GiB guest.
"$LESSON03" --function vfs_unlink -- true 2>/tmp/vfs_unlink; echo "CHECK vfs_unlink_rc $?"
grep '^error:' /tmp/vfs_unlink | sed 's/^/CHECK vfs_unlink_error /'
"$LESSON02" --ring-buffer-kib 1048576 -- true 2>/tmp/enomem; echo "CHECK enomem_rc $?"
grep '^error:' /tmp/enomem | sed 's/^/CHECK enomem_error /'

# Item 6: under sudo, the command's files are the user's, and its unlinks are seen.
touch /tmp/shared/old && chmod 666 /tmp/shared/old
SUDO_UID=65534 SUDO_GID=65534 SUDO_USER=nobody "$LESSON02" --json -- \
    sh -c 'touch /tmp/shared/made; id -u > /tmp/shared/uid; echo "$HOME" > /tmp/shared/home; rm /tmp/shared/old' \
    > /tmp/sudo.json 2>/tmp/sudo.err
echo "CHECK sudo_rc $?"
cat /tmp/sudo.err >&2
echo "CHECK sudo_owner $(stat -c %u:%g /tmp/shared/made)"
echo "CHECK sudo_uid $(cat /tmp/shared/uid)"
echo "CHECK sudo_home $(cat /tmp/shared/home)"
grep '"filename":"/tmp/shared/old"' /tmp/sudo.json | grep -c '"ret":0,' | sed 's/^/CHECK sudo_unlinks_seen /'

wait_for_start() {
    tries=0
    until grep -q 'running the command' "$1"; do
        tries=$((tries + 1)); [ $tries -gt 600 ] && break; sleep 0.1
    done
}

# Item 7: SIGKILL to the lesson kills the command.
"$LESSON02" -- sleep 300 2>/tmp/kill9.err &
lesson=$!
wait_for_start /tmp/kill9.err
kill -9 $lesson; wait $lesson 2>/dev/null
sleep 0.5
# Look for this command line, not any sleep: the VM's init has a heartbeat sleep of its own.
kill9=died
for cmdline in /proc/[0-9]*/cmdline; do
    [ "$(tr '\0' ' ' <"$cmdline" 2>/dev/null)" = "sleep 300 " ] && kill9=survived
done
echo "CHECK kill9 $kill9"

# Item 7: SIGINT during the load: the command does not start.
"$LESSON02" -- touch /tmp/started 2>/tmp/early.err &
lesson=$!
sleep 0.3
kill -INT $lesson; wait $lesson; echo "CHECK early_rc $?"
if [ -e /tmp/started ]; then echo "CHECK early started"; else echo "CHECK early not_started"; fi
grep -c 'attached to' /tmp/early.err | sed 's/^/CHECK early_announced /'

# Item 7: a second SIGINT ends the lesson though its command ignores signals.
"$LESSON02" -- sh -c 'trap "" INT TERM; while :; do sleep 0.2; done' 2>/tmp/twice.err &
lesson=$!
wait_for_start /tmp/twice.err
( sleep 30; kill -9 $lesson 2>/dev/null && echo "CHECK twice_guard killed the lesson" ) &
guard=$!
kill -INT $lesson; sleep 2; kill -INT $lesson
wait $lesson; echo "CHECK twice_rc $?"
kill $guard 2>/dev/null
grep -c 'unlinks seen' /tmp/twice.err | sed 's/^/CHECK twice_summaries /'
"#;

#[test]
#[ignore = "boots QEMU; run by `cargo xtask test`"]
fn load_errors_and_the_command_on_debian_6_12() {
    let [lesson02, lesson03] = LESSONS.map(binary);
    let mut run = xtask::vm::VmRun::new("debian-6.12", ["sh", "-c", IN_THE_VM]);
    for (name, path) in [("LESSON02", &lesson02), ("LESSON03", &lesson03)] {
        run.extra_files.push((path.clone(), path.clone()));
        run.env.push((name.into(), path.display().to_string()));
    }
    let output = run.run_captured().expect("booting debian-6.12");
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!(
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let check = |name: &str| -> Vec<&str> {
        let prefix = format!("CHECK {name} ");
        stdout
            .lines()
            .filter_map(|line| line.strip_prefix(prefix.as_str()))
            .collect()
    };
    let one = |name: &str| -> &str {
        let values = check(name);
        assert_eq!(values.len(), 1, "{name}: {values:?}\n{stdout}");
        values[0]
    };

    assert_eq!(one("vfs_unlink_rc"), "1");
    let refused = one("vfs_unlink_error");
    for want in [
        "on vfs_unlink failed with EACCES (-13): the BPF verifier refused",
        "(the verifier: \"access beyond the end of member i_mode",
        "Next: drop --function so lesson-03 picks",
    ] {
        assert!(refused.contains(want), "{want:?} missing in: {refused}");
    }
    assert_eq!(one("enomem_rc"), "1");
    let enomem = one("enomem_error");
    assert!(
        enomem.contains("ENOMEM (-12)") && enomem.contains("give a smaller --ring-buffer-kib"),
        "{enomem}"
    );

    assert_eq!(one("sudo_rc"), "0");
    assert_eq!(one("sudo_owner"), "65534:65534");
    assert_eq!(one("sudo_uid"), "65534");
    assert_eq!(one("sudo_home"), "/nonexistent");
    assert_eq!(one("sudo_unlinks_seen"), "1");

    assert_eq!(one("kill9"), "died");
    let too_late = "the SIGINT came after the attach (start-up under TCG takes seconds)";
    assert_eq!(one("early_announced"), "0", "{too_late}");
    assert_eq!(one("early_rc"), "130");
    assert_eq!(one("early"), "not_started");
    assert_eq!(
        one("twice_rc"),
        "137",
        "the command's SIGKILL, as a shell says it"
    );
    assert_eq!(one("twice_summaries"), "1");
    assert_eq!(
        check("twice_guard"),
        [] as [&str; 0],
        "the lesson did not end itself"
    );
}
