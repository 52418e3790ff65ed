//! `cargo xtask exercise`: the workbook's exercises, checked like rustlings.
//! Each one is a crate under exercises/ that the learner edits; its task is
//! in the book, its hint and check are in catalog.rs, and its reference
//! solution (spoilers) is under xtask/solutions/.

mod catalog;
mod runner;

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::vm::kernels;
use crate::{deps, workspace};
use catalog::{Exercise, ALL};
use runner::{Program, Variant};

/// The kernels CI checks every exercise on: both names of the unlink
/// function, and 6.12 (the default) where 03-name-at-entry's start fails.
pub const CI_KERNELS: [&str; 3] = ["debian-5.10", "debian-6.12", "debian-7.2"];

#[derive(clap::Subcommand)]
pub enum Task {
    /// Show every exercise as done or todo
    List {
        /// One JSON object per exercise: id, task, done
        #[arg(long)]
        json: bool,
    },
    /// Build an exercise and run it with its workload: pass, or what is still wrong and the hint
    Check {
        /// The exercise, e.g. 02-uid-gid (see `list`)
        id: String,
        /// Run in a VM on this kernel (as for `cargo xtask vm`); without it, natively where this
        /// kernel can, else on the default kernel
        #[arg(long)]
        kernel: Option<String>,
        /// Check the reference solution instead of your code (spoilers are not shown)
        #[arg(long)]
        solution: bool,
    },
    /// Show an exercise's hint
    Hint { id: String },
    /// What CI runs: every starting point fails, every solution passes, on each kernel
    #[command(hide = true)]
    Ci {
        /// Repeatable; default: the CI kernels
        #[arg(long)]
        kernel: Vec<String>,
    },
}

pub fn run(task: Task) -> Result<ExitCode> {
    match task {
        Task::List { json } => {
            list(json)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Hint { id } => {
            let exercise = find(&id)?;
            println!(
                "{}: {}\nhint: {}",
                exercise.id, exercise.task, exercise.hint
            );
            Ok(ExitCode::SUCCESS)
        }
        Task::Check {
            id,
            kernel,
            solution,
        } => check(find(&id)?, kernel.as_deref(), solution),
        Task::Ci { kernel } => {
            let kernels: Vec<&str> = match kernel.is_empty() {
                true => CI_KERNELS.to_vec(),
                false => kernel.iter().map(String::as_str).collect(),
            };
            ci(&kernels)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn find(id: &str) -> Result<&'static Exercise> {
    catalog::find(id).with_context(|| {
        let ids: Vec<&str> = ALL.iter().map(|e| e.id).collect();
        format!("no exercise {id:?}; the exercises are {}", ids.join(", "))
    })
}

fn list(json: bool) -> Result<()> {
    if json {
        for exercise in ALL {
            let entry = serde_json::json!({
                "id": exercise.id,
                "task": exercise.task,
                "done": is_done(exercise)?,
            });
            println!("{entry}");
        }
        return Ok(());
    }
    let mut done = 0;
    for exercise in ALL {
        let state = if is_done(exercise)? {
            done += 1;
            "done"
        } else {
            "todo"
        };
        println!("{state:4}  {:18}  {}", exercise.id, exercise.task);
    }
    println!(
        "\n{done} of {} done. Check one with: cargo xtask exercise check ID",
        ALL.len()
    );
    Ok(())
}

fn check(exercise: &'static Exercise, kernel: Option<&str>, solution: bool) -> Result<ExitCode> {
    deps::ensure(&[deps::BUILD])?;
    let variant = if solution {
        Variant::Solution
    } else {
        Variant::Learner
    };
    let programs = match runner::build(&[exercise], variant) {
        Ok(programs) => programs,
        Err(err) => {
            println!(
                "✗ {}: it does not build ({err:#}); cargo's errors are above",
                exercise.id
            );
            println!("hint: {}", exercise.hint);
            return Ok(ExitCode::FAILURE);
        }
    };
    let (runs, place) = match kernel {
        None if runner::native_possible(exercise) => (
            runner::run_natively(&programs)?,
            "this machine's kernel".to_string(),
        ),
        _ => {
            deps::ensure(&[deps::VM])?;
            let kernel = kernel.unwrap_or(kernels::DEFAULT);
            (runner::run_in_vm(kernel, &programs)?, kernel.to_string())
        }
    };
    let label = programs[0].label();
    let verdict = verdict(&runs, &programs[0]);
    match verdict {
        Ok(()) => {
            println!("✓ {label} passed on {place}.");
            if !solution {
                mark_done(exercise)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(expectation) => {
            println!("✗ {label} on {place}: {expectation}");
            if let Some(run) = runs.get(&label) {
                println!("\nits output:\n{}{}", run.stdout, run.stderr);
            }
            println!("hint: {}", exercise.hint);
            Ok(ExitCode::FAILURE)
        }
    }
}

fn verdict(
    runs: &std::collections::BTreeMap<String, catalog::Run>,
    program: &Program,
) -> Result<(), String> {
    match runs.get(&program.label()) {
        Some(run) => (program.exercise.expect)(run),
        None => Err("the run did not finish (see the VM's console log)".into()),
    }
}

/// CI: on each of `kernels`, every starting point fails its check (except
/// where the exercise says the kernel already behaves as asked: there it must
/// pass) and every solution passes. One build per variant, one boot per kernel.
pub fn ci(kernels: &[&str]) -> Result<()> {
    let started = Instant::now();
    let all: Vec<&'static Exercise> = ALL.iter().collect();
    let mut programs = runner::build(&all, Variant::Learner)?;
    programs.extend(runner::build(&all, Variant::Solution)?);
    let mut wrong = Vec::new();
    for kernel in kernels {
        let runs = runner::run_in_vm(kernel, &programs)?;
        for program in &programs {
            let passes = verdict(&runs, program);
            let should_pass = program.variant == Variant::Solution
                || program.exercise.start_passes_on.contains(kernel);
            let outcome = match &passes {
                Ok(()) => "passes".to_string(),
                Err(why) => format!("fails: {why}"),
            };
            eprintln!("exercise {kernel} {}: {outcome}", program.label());
            if passes.is_ok() != should_pass {
                let output = runs
                    .get(&program.label())
                    .map(|run| format!("{}{}", run.stdout, run.stderr))
                    .unwrap_or_default();
                wrong.push(format!("{kernel} {}: {outcome}\n{output}", program.label()));
            }
        }
    }
    eprintln!(
        "exercises: {} programs on {} kernels in {:.0} s",
        programs.len(),
        kernels.len(),
        started.elapsed().as_secs_f64()
    );
    if !wrong.is_empty() {
        bail!(
            "exercise checks gave the wrong verdict (starting points must fail, solutions pass):\n{}",
            wrong.join("\n")
        );
    }
    Ok(())
}

/// Where a passed check is remembered: the fingerprint of the sources it passed with.
fn done_file(exercise: &Exercise) -> PathBuf {
    workspace::target_dir()
        .join("exercises/done")
        .join(exercise.id)
}

fn is_done(exercise: &Exercise) -> Result<bool> {
    let stored = fs::read_to_string(done_file(exercise)).unwrap_or_default();
    Ok(!stored.is_empty() && stored == fingerprint(exercise)?)
}

fn mark_done(exercise: &Exercise) -> Result<()> {
    let file = done_file(exercise);
    let dir = file.parent().expect("has a parent");
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::write(&file, fingerprint(exercise)?).with_context(|| format!("writing {}", file.display()))
}

/// A hash of the exercise crate's files, so that an edit after a pass shows as todo.
fn fingerprint(exercise: &Exercise) -> Result<String> {
    let mut hasher = DefaultHasher::new();
    hash_tree(
        &workspace::root().join("exercises").join(exercise.id),
        &mut hasher,
    )?;
    Ok(format!("{:016x}\n", hasher.finish()))
}

fn hash_tree(dir: &Path, hasher: &mut DefaultHasher) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let kind = entry.file_type()?;
        hasher.write(entry.file_name().as_encoded_bytes());
        if kind.is_dir() {
            hash_tree(&entry.path(), hasher)?;
        } else if kind.is_file() {
            hasher.write(&fs::read(entry.path())?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(dir: &Path) -> u64 {
        let mut hasher = DefaultHasher::new();
        hash_tree(dir, &mut hasher).unwrap();
        hasher.finish()
    }

    #[test]
    fn an_edit_or_a_new_file_changes_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("src")).unwrap();
        fs::write(dir.path().join("src/main.rs"), "fn main() {}\n").unwrap();
        let before = hash(dir.path());
        assert_eq!(before, hash(dir.path()));
        fs::write(dir.path().join("src/main.rs"), "fn main() { }\n").unwrap();
        let edited = hash(dir.path());
        assert_ne!(before, edited);
        fs::write(dir.path().join("src/extra.rs"), "").unwrap();
        assert_ne!(edited, hash(dir.path()));
    }
}
