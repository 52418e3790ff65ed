//! Building exercise programs (the learner's or the reference solution) and
//! running them with their workloads: natively, or all in one VM boot.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::catalog::{Exercise, Run};
use crate::test::cargo;
use crate::vm::VmRun;
use crate::{cmd, workspace};

/// Which code of an exercise to build.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Variant {
    /// exercises/ID as the learner left it.
    Learner,
    /// exercises/ID with xtask/solutions/ID laid over it, built in a copy.
    Solution,
}

/// One program to run: which exercise, which code, and its binary.
pub struct Program {
    pub exercise: &'static Exercise,
    pub variant: Variant,
    pub binary: PathBuf,
}

impl Program {
    pub fn label(&self) -> String {
        match self.variant {
            Variant::Learner => self.exercise.id.to_string(),
            Variant::Solution => format!("{}-solution", self.exercise.id),
        }
    }
}

fn exercises_dir() -> PathBuf {
    workspace::target_dir().join("exercises")
}

/// Build the given exercises' programs, each with one cargo call per variant.
pub fn build(exercises: &[&'static Exercise], variant: Variant) -> Result<Vec<Program>> {
    let mut build = cargo();
    build.arg("build");
    if variant == Variant::Solution {
        let manifest = solutions_workspace(exercises)?;
        build.arg("--manifest-path").arg(manifest);
        build.arg("--target-dir").arg(workspace::target_dir());
    }
    let programs: Vec<Program> = exercises
        .iter()
        .map(|&exercise| {
            let program = Program {
                exercise,
                variant,
                binary: PathBuf::new(),
            };
            let package = format!("exercise-{}", program.label());
            let binary = workspace::target_dir().join("debug").join(&package);
            build.args(["--package", &package]);
            Program { binary, ..program }
        })
        .collect();
    cmd::run(&mut build)?;
    Ok(programs)
}

/// target/exercises/solutions: a workspace of copies of the exercise crates
/// with the solutions laid over them, renamed `exercise-ID-solution` so that
/// their binaries sit next to the learner's in target/debug.
fn solutions_workspace(exercises: &[&'static Exercise]) -> Result<PathBuf> {
    let root = workspace::root();
    let dir = exercises_dir().join("solutions");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for exercise in exercises {
        let copy = dir.join(exercise.id);
        if copy.exists() {
            fs::remove_dir_all(&copy).with_context(|| format!("removing {}", copy.display()))?;
        }
        copy_tree(&root.join("exercises").join(exercise.id), &copy)?;
        copy_tree(&root.join("xtask/solutions").join(exercise.id), &copy)?;
        let manifest = copy.join("Cargo.toml");
        let text = fs::read_to_string(&manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        let lesson_build = root.join("lesson-build");
        let text = text
            .replace(
                &format!("name = \"exercise-{}\"", exercise.id),
                &format!("name = \"exercise-{}-solution\"", exercise.id),
            )
            .replace("\"../../lesson-build\"", &format!("{:?}", lesson_build));
        fs::write(&manifest, text).with_context(|| format!("writing {}", manifest.display()))?;
    }
    // Every solution stays a member, so that building one keeps the others' lock entries.
    let members: Vec<String> = fs::read_dir(&dir)?
        .flatten()
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .map(|entry| format!("{:?}", entry.file_name().to_string_lossy()))
        .collect();
    let manifest = dir.join("Cargo.toml");
    fs::write(
        &manifest,
        format!(
            "# Made by `cargo xtask exercise`: the reference solutions (spoilers).\n\
             [workspace]\nresolver = \"2\"\nmembers = [{}]\n",
            members.join(", ")
        ),
    )?;
    // The same dependency versions as the project's own workspace.
    fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).context("copying Cargo.lock")?;
    Ok(manifest)
}

/// Copy the regular files under `from` into `to`, keeping the layout.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// The guest's shell script: set up, then run each program with its workload.
fn script(programs: &[(String, &Program)]) -> String {
    let mut script = String::from(
        r#"W=${EXERCISE_DIR:-/tmp/exercises}; BIN=$W/bin
mkdir -p $BIN && chmod 755 $W
for applet in rm unlink; do ln -sf /bin/busybox $BIN/$applet; done
# uid 1234, gid 5678: util-linux setpriv natively, busybox su with a passwd entry in the VM.
if [ -x /usr/bin/setpriv ]; then
    as_ex() { /usr/bin/setpriv --reuid=1234 --regid=5678 --clear-groups "$@"; }
else
    mkdir -p /etc && echo 'ex:x:1234:5678::/tmp:/bin/sh' >>/etc/passwd
    as_ex() { su ex -c "$*"; }
fi
start() { # label program args...: run it until it says it is watching (60 s at most)
    label=$1; shift
    rm -rf $W/$label && mkdir -p $W/$label && chmod 777 $W/$label
    "$@" >$W/$label.out 2>$W/$label.err &
    pid=$!; i=0
    while ! grep -q '^Watching' $W/$label.err && kill -0 $pid 2>/dev/null && [ $i -lt 600 ]; do
        sleep 0.1; i=$((i + 1))
    done
}
finish() { # stop it with Ctrl-C (SIGINT) and show what it printed
    kill -INT $pid 2>/dev/null; wait $pid; status=$?
    echo "@@@ $label status $status"; cat $W/$label.out
    echo "@@@ $label stderr"; cat $W/$label.err; sed 's/^/workload: /' $W/$label.workload 2>/dev/null
    echo "@@@ $label end"
}
"#,
    );
    for (path, program) in programs {
        let label = program.label();
        let mut words = vec![label.clone(), path.clone()];
        words.extend(program.exercise.args.iter().map(|arg| arg.to_string()));
        let words: Vec<String> = words
            .iter()
            .map(|word| cmd::shell_quote(word.as_ref()))
            .collect();
        script.push_str(&format!(
            "start {}\nif kill -0 $pid 2>/dev/null; then (cd $W/{label} && {}) >$W/{label}.workload 2>&1; sleep 0.3; fi\nfinish\n",
            words.join(" "),
            program.exercise.workload
        ));
    }
    script
}

/// Split the script's output into one run per label.
fn parse(output: &str) -> BTreeMap<String, Run> {
    let mut runs = BTreeMap::new();
    let mut current: Option<(String, Run, bool)> = None;
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("@@@ ") {
            let mut words = rest.split_whitespace();
            let label = words.next().unwrap_or_default().to_string();
            match (words.next(), words.next()) {
                (Some("status"), Some(status)) => {
                    let run = Run {
                        status: status.parse().unwrap_or(-1),
                        ..Run::default()
                    };
                    current = Some((label, run, false));
                }
                (Some("stderr"), _) => {
                    if let Some((_, _, in_stderr)) = &mut current {
                        *in_stderr = true;
                    }
                }
                _ => {
                    if let Some((label, run, _)) = current.take() {
                        runs.insert(label, run);
                    }
                }
            }
            continue;
        }
        if let Some((_, run, in_stderr)) = &mut current {
            let text = if *in_stderr {
                &mut run.stderr
            } else {
                &mut run.stdout
            };
            text.push_str(line);
            text.push('\n');
        }
    }
    runs
}

/// Run every program with its workload on `kernel`: one boot for all the
/// programs whose exercises need the same kernel command line.
pub fn run_in_vm(kernel: &str, programs: &[Program]) -> Result<BTreeMap<String, Run>> {
    let mut boots: BTreeMap<&[&str], Vec<&Program>> = BTreeMap::new();
    for program in programs {
        boots
            .entry(program.exercise.boot_args)
            .or_default()
            .push(program);
    }
    let mut runs = BTreeMap::new();
    for (boot_args, programs) in boots {
        let mut guest = Vec::new();
        let mut vm = VmRun::new(kernel, ["sh", "-c"]);
        for program in &programs {
            let path = format!("/exercises/{}", program.label());
            vm.extra_files
                .push((program.binary.clone(), PathBuf::from(&path)));
            guest.push((path, *program));
        }
        vm.command.push(script(&guest).into());
        vm.append = boot_args.iter().map(|arg| arg.to_string()).collect();
        vm.timeout = Duration::from_secs(120 + 60 * programs.len() as u64);
        eprintln!(
            "$ cargo xtask vm --kernel {kernel}{} -- sh -c '<{} programs and their workloads>'",
            boot_args
                .iter()
                .map(|arg| format!(" --append {arg}"))
                .collect::<String>(),
            programs.len()
        );
        let output = vm.run_captured()?;
        if output.status != 0 {
            bail!(
                "the exercise script failed in the VM (status {}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        runs.extend(parse(&String::from_utf8_lossy(&output.stdout)));
    }
    Ok(runs)
}

/// Run the programs on this machine's kernel (as root).
pub fn run_natively(programs: &[Program]) -> Result<BTreeMap<String, Run>> {
    let guest: Vec<(String, &Program)> = programs
        .iter()
        .map(|program| (program.binary.display().to_string(), program))
        .collect();
    // Root runs the workload: in a private directory, not at a fixed path in /tmp.
    let dir = exercises_dir();
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let private = tempfile::tempdir_in(&dir).context("creating a private directory")?;
    let output = cmd::output(
        Command::new("/bin/busybox")
            .args(["sh", "-c", &script(&guest)])
            .env("EXERCISE_DIR", private.path()),
    )?;
    Ok(parse(&output))
}

/// Can this kernel run the exercise? Lesson 02's need root and the kprobe
/// PMU. Lesson 03's always run in a VM: some kernels refuse fentry with
/// everything in place (see kernel-facts), and only a real load would tell.
pub fn native_possible(exercise: &Exercise) -> bool {
    workspace::is_root()
        && exercise.id.starts_with("02-")
        && Path::new("/sys/bus/event_source/devices/kprobe").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_splits_runs_by_label() {
        let output = "noise\n@@@ a status 0\nunlink name=x\n@@@ a stderr\nWatching\n@@@ a end\n\
                      @@@ b-solution status 1\n@@@ b-solution stderr\nError: no\n@@@ b-solution end\n";
        let runs = parse(output);
        assert_eq!(runs["a"].status, 0);
        assert_eq!(runs["a"].stdout, "unlink name=x\n");
        assert_eq!(runs["a"].stderr, "Watching\n");
        assert_eq!(runs["b-solution"].status, 1);
        assert_eq!(runs["b-solution"].stderr, "Error: no\n");
    }

    #[test]
    fn a_run_cut_short_is_missing_not_half_parsed() {
        let runs = parse("@@@ a status 0\nunlink name=x\n");
        assert!(runs.is_empty());
    }
}
