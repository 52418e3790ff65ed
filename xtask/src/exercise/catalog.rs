//! The exercises: what each asks (one line; the full task is in the book),
//! its hint, the workload its check drives and what the check expects.

/// How one exercise program ran: its exit status and what it printed.
#[derive(Debug, Default)]
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

pub struct Exercise {
    /// Also the directory under exercises/ and under xtask/solutions/.
    pub id: &'static str,
    pub task: &'static str,
    pub hint: &'static str,
    /// Arguments for the exercise program.
    pub args: &'static [&'static str],
    /// Shell commands run in a fresh, world-writable directory while the
    /// program watches. `$BIN` holds `rm` and `unlink` (busybox) and `as_ex`
    /// runs a command as uid 1234, gid 5678.
    pub workload: &'static str,
    /// Appended to the guest kernel's command line for this exercise's runs.
    pub boot_args: &'static [&'static str],
    /// `Err(what is still wrong)` unless the run shows what the task asks.
    pub expect: fn(&Run) -> Result<(), String>,
    /// Kernels on which the unchanged starting point already behaves as asked
    /// (CI asserts that it passes there, and fails everywhere else).
    pub start_passes_on: &'static [&'static str],
}

pub const ALL: &[Exercise] = &[
    Exercise {
        id: "02-uid-gid",
        task: "kprobe: add the uid and gid of the unlinking process to each event",
        hint: "bpf_get_current_uid_gid() returns the gid in the upper 32 bits and the uid in the \
               lower 32. Add two __u32 fields to struct event (the skeleton's types::event follows) \
               and print them as uid=U gid=G.",
        args: &[],
        workload: "touch by-ex && chmod 666 by-ex && as_ex unlink by-ex",
        boot_args: &[],
        expect: |run| {
            let line = event_line(run, "unlink", "by-ex")?;
            for field in ["uid=1234", "gid=5678"] {
                if !has_field(line, field) {
                    return Err(format!(
                        "uid 1234, gid 5678 unlinked by-ex, but its line has no {field}: {line:?}"
                    ));
                }
            }
            Ok(())
        },
        start_passes_on: &[],
    },
    Exercise {
        id: "02-rmdir",
        task: "kprobe: watch rmdir too (do_rmdir, filename_rmdir from 7.0), printed as rmdir lines",
        hint: "Add a second kprobe/kretprobe pair with the same arguments and attach it to the \
               first of filename_rmdir and do_rmdir this kernel has (kernel_function() finds it). \
               Put an op field in struct event so that user space can print `rmdir` or `unlink`.",
        args: &[],
        workload: RMDIR_WORKLOAD,
        boot_args: &[],
        expect: expect_rmdir,
        start_passes_on: &[],
    },
    Exercise {
        id: "02-count-by-comm",
        task: "kprobe: count unlinks per command in a BPF hash map and print the table on exit",
        hint: "Declare a BPF_MAP_TYPE_HASH keyed by char[16] (the comm) with a __u64 value. In the \
               kprobe, look the comm up: add 1 with __sync_fetch_and_add, or insert 1 with \
               BPF_NOEXIST. After the poll loop, walk skel.maps.counts.keys() and lookup() each, \
               printing `COMM COUNT` lines.",
        args: &[],
        workload: "touch a b c d e && $BIN/rm a b c && $BIN/unlink d && $BIN/unlink e",
        boot_args: &[],
        expect: |run| {
            ok_status(run)?;
            for (comm, count) in [("rm", "3"), ("unlink", "2")] {
                let found = run.stdout.lines().any(|line| {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    words == [comm, count] || words == [count, comm]
                });
                if !found {
                    return Err(format!(
                        "`{comm}` unlinked {count} files, but no line on exit says `{comm} {count}`"
                    ));
                }
            }
            Ok(())
        },
        start_passes_on: &[],
    },
    Exercise {
        id: "02-verifier-log",
        task: "kprobe: the verifier rejects this program; read its log with -v and fix the BPF code",
        hint: "Run it with -v (in the VM: cargo xtask vm -- target/debug/exercise-02-verifier-log -v) \
               and read the last lines of the verifier's log: which register holds what, and why the \
               access is refused. bpf_map_lookup_elem() may return NULL.",
        args: &[],
        workload: "touch plain-file && unlink plain-file",
        boot_args: &[],
        expect: |run| {
            let line = event_line(run, "unlink", "plain-file")?;
            if !has_field(line, "ret=0") {
                return Err(format!("plain-file was unlinked (ret=0), but: {line:?}"));
            }
            Ok(())
        },
        start_passes_on: &[],
    },
    Exercise {
        id: "03-name-at-entry",
        task: "fentry: copy the name at fentry, not at fexit (before 7.0 the name is freed by then)",
        hint: "The check boots with init_on_free=1: memory is zeroed when freed, and before Linux 7.0 \
               do_unlinkat frees the name (putname) before fexit runs. Build the whole record in \
               fentry, park it in a hash map by thread id, and let fexit add ret and the latency.",
        args: &[],
        workload: "touch keep-my-name && unlink keep-my-name",
        // Zero freed memory, so that a name read after putname() is gone for sure.
        boot_args: &["init_on_free=1"],
        expect: |run| event_line(run, "unlink", "keep-my-name").map(drop),
        // filename_unlinkat (7.0+) leaves freeing the name to its caller.
        start_passes_on: &["debian-7.2"],
    },
    Exercise {
        id: "03-errors-only",
        task: "fexit: report only the unlinks that failed (ret != 0)",
        hint: "fexit sees the return value: return early when it is 0, before reserving a record, \
               and do not forget to delete the entry time.",
        args: &[],
        workload: "touch exists && unlink exists && { unlink missing-file 2>/dev/null; true; }",
        boot_args: &[],
        expect: |run| {
            let line = event_line(run, "unlink", "missing-file")?;
            if !has_field(line, "ret=-2") {
                return Err(format!("missing-file failed with ENOENT (ret=-2), but: {line:?}"));
            }
            if event_line(run, "unlink", "exists").is_ok() {
                return Err("unlinking `exists` succeeded, yet it was reported".into());
            }
            Ok(())
        },
        start_passes_on: &[],
    },
    Exercise {
        id: "03-comm-filter",
        task: "fentry: make --comm NAME report only that command's unlinks, with a rodata variable",
        hint: "Declare `const volatile char filter_comm[16] = {};` in the BPF code and compare it \
               with bpf_get_current_comm() in fentry. In main.rs, fill \
               open.maps.rodata_data's filter_comm after open() and before load().",
        args: &["--comm", "unlink"],
        workload: "touch by-rm by-unlink && $BIN/rm by-rm && $BIN/unlink by-unlink",
        boot_args: &[],
        expect: |run| {
            event_line(run, "unlink", "by-unlink")?;
            if event_line(run, "unlink", "by-rm").is_ok() {
                return Err("run with --comm unlink, it still reported `rm by-rm`".into());
            }
            Ok(())
        },
        start_passes_on: &[],
    },
    Exercise {
        id: "03-rmdir",
        task: "fentry: watch rmdir too with a second fentry/fexit pair, printed as rmdir lines",
        hint: "Add rmdir_entry and rmdir_exit (same arguments as unlink's), set their attach target \
               to the first of filename_rmdir and do_rmdir this kernel has before load, attach \
               them, and add an op field to struct event.",
        args: &[],
        workload: RMDIR_WORKLOAD,
        boot_args: &[],
        expect: expect_rmdir,
        start_passes_on: &[],
    },
];

/// One rmdir that works, one that fails (ENOTEMPTY), and an unlink.
const RMDIR_WORKLOAD: &str = "mkdir gone-dir full-dir && touch full-dir/f && rmdir gone-dir && \
    { rmdir full-dir 2>/dev/null; true; } && unlink full-dir/f";

fn expect_rmdir(run: &Run) -> Result<(), String> {
    for (name, ret) in [("gone-dir", "ret=0"), ("full-dir", "ret=-39")] {
        let line = event_line(run, "rmdir", name)?;
        if !has_field(line, ret) {
            return Err(format!("rmdir {name} returned {ret}, but: {line:?}"));
        }
    }
    event_line(run, "unlink", "full-dir/f").map(drop)
}

pub fn find(id: &str) -> Option<&'static Exercise> {
    ALL.iter().find(|exercise| exercise.id == id)
}

fn ok_status(run: &Run) -> Result<(), String> {
    if run.status == 0 {
        return Ok(());
    }
    // anyhow's `Error: ...` line, not a backtrace after it.
    let mut lines = run.stderr.lines().filter(|l| !l.trim().is_empty());
    let last = lines
        .clone()
        .find(|l| l.starts_with("Error"))
        .or(lines.next_back());
    Err(format!(
        "the program exited with status {}: {}",
        run.status,
        last.unwrap_or("no message")
    ))
}

/// The line `OP ... name=NAME` (the name last, as the starting points print it).
fn event_line<'r>(run: &'r Run, op: &str, name: &str) -> Result<&'r str, String> {
    ok_status(run)?;
    let suffix = format!(" name={name}");
    run.stdout
        .lines()
        .find(|line| line.starts_with(&format!("{op} ")) && line.ends_with(&suffix))
        .ok_or_else(|| format!("no `{op} ... name={name}` line, though the check did {op} {name}"))
}

fn has_field(line: &str, field: &str) -> bool {
    line.split_whitespace().any(|word| word == field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stdout: &str) -> Run {
        Run {
            stdout: stdout.into(),
            ..Run::default()
        }
    }

    #[test]
    fn ids_are_unique_and_have_a_crate_and_a_solution() {
        let root = crate::workspace::root();
        for (i, exercise) in ALL.iter().enumerate() {
            assert!(ALL[..i].iter().all(|other| other.id != exercise.id));
            assert!(root
                .join("exercises")
                .join(exercise.id)
                .join("Cargo.toml")
                .is_file());
            assert!(root.join("xtask/solutions").join(exercise.id).is_dir());
        }
    }

    #[test]
    fn uid_gid_needs_both_fields_on_the_right_line() {
        let expect = find("02-uid-gid").unwrap().expect;
        assert!(expect(&run(
            "unlink pid=7 uid=1234 gid=5678 comm=unlink ret=0 name=by-ex\n"
        ))
        .is_ok());
        let err = expect(&run("unlink pid=7 comm=unlink ret=0 name=by-ex\n")).unwrap_err();
        assert!(err.contains("uid=1234"), "{err}");
        assert!(expect(&run("unlink uid=1234 gid=5678 name=other\n")).is_err());
    }

    #[test]
    fn counts_accept_either_column_order_and_nothing_else() {
        let expect = find("02-count-by-comm").unwrap().expect;
        assert!(expect(&run("unlinks per command:\nrm 3\n2 unlink\n")).is_ok());
        assert!(expect(&run("rm 3\nunlink 1\n")).is_err());
        assert!(expect(&run("unlink pid=1 comm=rm ret=0 name=3\n")).is_err());
    }

    #[test]
    fn a_failed_program_is_reported_with_its_last_message() {
        let expect = find("02-verifier-log").unwrap().expect;
        let failed = Run {
            status: 1,
            stderr: "Error: loading the BPF programs\n".into(),
            ..Run::default()
        };
        assert!(expect(&failed)
            .unwrap_err()
            .contains("loading the BPF programs"));
    }

    #[test]
    fn errors_only_rejects_reported_successes() {
        let expect = find("03-errors-only").unwrap().expect;
        let both = "unlink pid=1 comm=unlink ret=0 latency_ns=5 name=exists\n\
                    unlink pid=2 comm=unlink ret=-2 latency_ns=5 name=missing-file\n";
        assert!(expect(&run(both)).is_err());
        assert!(expect(&run(both.lines().nth(1).unwrap())).is_ok());
    }

    #[test]
    fn rmdir_needs_the_failure_too() {
        let expect = find("03-rmdir").unwrap().expect;
        let ok = "rmdir pid=1 ret=0 name=gone-dir\nrmdir pid=1 ret=-39 name=full-dir\n\
                  unlink ret=0 name=full-dir/f\n";
        assert!(expect(&run(ok)).is_ok());
        assert!(expect(&run(&ok.replace("ret=-39", "ret=0"))).is_err());
    }
}
