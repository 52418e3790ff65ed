//! `cargo xtask bench`: measure the lessons with the `unlink-bench` harness
//! (bench/): cost per unlink with each probe, start to attached against
//! bpftrace, event throughput and peak memory, in VM kernels (TCG) or natively.
//! The harness prints one JSON report per kernel; its `report` task merges them
//! into target/bench/results.{json,md}, and a full run copies the Markdown
//! into the book.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cmd::{self, cargo};
use crate::vm::{kernels, VmRun};
use crate::{deps, workspace};

/// The peer the lessons' start-up is compared with (Debian's package).
const BPFTRACE: &str = "/usr/bin/bpftrace";
/// A full run's results (JSON: `unlink-bench report --out DIR` renders the pages
/// from it again) and its tables, included by the book's two measurement pages.
const BOOK_FILES: [(&str, &str); 3] = [
    ("results.json", "book/src/generated/bench.json"),
    ("results.md", "book/src/generated/bench.md"),
    ("results.zh.md", "book/src/generated/bench.zh.md"),
];

#[derive(Clone, clap::Args)]
pub struct Args {
    /// debian-5.10, debian-6.1, debian-6.12, debian-7.2, `all` for the four, or a kernel image path
    #[arg(long, default_value = kernels::DEFAULT, conflicts_with = "native")]
    pub kernel: String,
    /// Measure on this machine's own kernel instead of a VM
    #[arg(long)]
    pub native: bool,
    /// Every measurement, briefly: to check the bench works, not to quote its numbers
    #[arg(long)]
    pub quick: bool,
}

impl Args {
    /// What `cargo xtask test` runs so the bench cannot rot.
    pub fn quick() -> Args {
        Args {
            kernel: kernels::DEFAULT.to_string(),
            native: false,
            quick: true,
        }
    }
}

pub fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    if args.native {
        deps::ensure(&[deps::BUILD, deps::BENCH])?;
    } else {
        deps::ensure(&[deps::BUILD, deps::VM, deps::BENCH])?;
    }
    // Release builds: the numbers describe the lessons, not debug assertions.
    cmd::run(cargo().args([
        "build",
        "--release",
        "--package",
        "lesson-02",
        "--package",
        "lesson-03",
        "--package",
        "unlink-bench",
    ]))?;
    let release = workspace::target_dir().join("release");
    let harness = release.join("unlink-bench");
    let out = workspace::target_dir().join("bench");
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let names: Vec<String> = match (args.native, args.kernel.as_str()) {
        (true, _) => vec!["native".to_string()],
        (false, "all") => kernels::MATRIX.iter().map(|k| k.to_string()).collect(),
        (false, kernel) => vec![kernel.to_string()],
    };
    let mut reports = Vec::new();
    for name in &names {
        let mut argv: Vec<String> = vec![
            harness.display().to_string(),
            "run".into(),
            "--lesson-02".into(),
            release.join("lesson-02").display().to_string(),
            "--lesson-03".into(),
            release.join("lesson-03").display().to_string(),
            "--bpftrace".into(),
            BPFTRACE.into(),
            "--kernel".into(),
            name.clone(),
            "--platform".into(),
            if args.native { "native" } else { "tcg" }.into(),
        ];
        if args.quick {
            argv.push("--quick".into());
        }
        let json = if args.native {
            cmd::output(Command::new(&argv[0]).args(&argv[1..]))?
        } else {
            in_vm(name, argv, args.quick)?
        };
        let path = out.join(format!("{}.json", name.replace('/', "_")));
        fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
        reports.push(path);
    }

    cmd::run(
        Command::new(&harness)
            .args(["report", "--out"])
            .arg(&out)
            .args(&reports),
    )?;
    eprintln!(
        "bench: wrote {0}/results.json and {0}/results.md",
        out.display()
    );
    if !args.quick {
        for (result, page) in BOOK_FILES {
            let book = workspace::root().join(page);
            fs::create_dir_all(book.parent().expect("a file in a directory"))?;
            fs::copy(out.join(result), &book)
                .with_context(|| format!("writing {}", book.display()))?;
            eprintln!("bench: copied {result} to {}", book.display());
        }
    }
    eprintln!("bench: done in {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Boot `kernel` and run the harness in it with the lessons and bpftrace copied in.
fn in_vm(kernel: &str, argv: Vec<String>, quick: bool) -> Result<String> {
    let mut vm = VmRun::new(kernel, argv);
    // The guest's root is in RAM, and bpftrace's libraries (LLVM, clang) are about 200 MB.
    vm.memory_mib = 2048;
    vm.timeout = Duration::from_secs(if quick { 600 } else { 3600 });
    vm.extra_files = ["lesson-02", "lesson-03"]
        .iter()
        .map(|name| workspace::target_dir().join("release").join(name))
        .chain([PathBuf::from(BPFTRACE)])
        .map(|path| (path.clone(), path))
        .collect();
    eprintln!("bench: {kernel} under TCG: a few minutes (--quick: about one)");
    let output = vm.run_captured()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprint!("{stderr}");
    if output.status != 0 {
        bail!(
            "the harness failed in {kernel} (status {}); console log: {}",
            output.status,
            output.console_log.display()
        );
    }
    eprintln!("bench: {kernel} took {:.0}s", output.elapsed.as_secs_f64());
    String::from_utf8(output.stdout).context("the harness's report is not UTF-8")
}
