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

use crate::cmd;
use crate::vm::{kernels, Arch, VmRun};
use crate::{build, deps, workspace};

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
    /// arm64: Debian's arm64 kernels, static aarch64 builds, no bpftrace
    /// (the guest runs static programs only); the book's table stays x86_64
    #[arg(long, value_enum, default_value_t = Arch::X86_64, conflicts_with = "native")]
    pub arch: Arch,
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
            arch: Arch::X86_64,
            quick: true,
        }
    }
}

pub fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    if args.native {
        deps::ensure(&[deps::BUILD, deps::BENCH])?;
    } else if args.arch == Arch::Arm64 {
        deps::ensure(&[deps::BUILD, deps::VM, deps::VM_ARM64])?;
    } else {
        deps::ensure(&[deps::BUILD, deps::VM, deps::BENCH])?;
    }
    // Release builds: the numbers describe the lessons, not debug assertions.
    let packages = ["lesson-02", "lesson-03", "unlink-bench"].map(String::from);
    let release = build::packages(
        &build::Args {
            arch: args.arch,
            release: true,
        },
        &packages,
    )?;
    // The harness's report task runs here: the host's own build.
    let harness = match args.arch {
        Arch::X86_64 => release.join("unlink-bench"),
        Arch::Arm64 => build::packages(
            &build::Args {
                arch: Arch::X86_64,
                release: true,
            },
            &packages[2..],
        )?
        .join("unlink-bench"),
    };
    let out = workspace::target_dir().join("bench");
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let names: Vec<String> = match (args.native, args.kernel.as_str()) {
        (true, _) => vec!["native".to_string()],
        (false, "all") => kernels::MATRIX.iter().map(|k| k.to_string()).collect(),
        (false, kernel) => vec![kernel.to_string()],
    };
    let mut reports = Vec::new();
    for name in &names {
        let label = format!("{}{name}", args.arch.cache_prefix());
        let mut argv: Vec<String> = vec![
            release.join("unlink-bench").display().to_string(),
            "run".into(),
            "--lesson-02".into(),
            release.join("lesson-02").display().to_string(),
            "--lesson-03".into(),
            release.join("lesson-03").display().to_string(),
            "--kernel".into(),
            label.clone(),
            "--platform".into(),
            if args.native { "native" } else { "tcg" }.into(),
        ];
        if args.arch == Arch::X86_64 {
            argv.extend(["--bpftrace".into(), BPFTRACE.into()]);
        }
        if args.quick {
            argv.push("--quick".into());
        }
        let json = if args.native {
            cmd::output(Command::new(&argv[0]).args(&argv[1..]))?
        } else {
            in_vm(name, args.arch, &release, argv, args.quick)?
        };
        let path = out.join(format!("{}.json", label.replace('/', "_")));
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
    if !args.quick && args.arch == Arch::X86_64 {
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

/// Boot `kernel` and run the harness in it with the lessons (in `release`)
/// and, on x86_64, bpftrace copied in.
fn in_vm(
    kernel: &str,
    arch: Arch,
    release: &std::path::Path,
    argv: Vec<String>,
    quick: bool,
) -> Result<String> {
    let mut vm = VmRun::new(kernel, argv);
    vm.arch = arch;
    // The guest's root is in RAM, and bpftrace's libraries (LLVM, clang) are about 200 MB.
    vm.memory_mib = 2048;
    vm.timeout = Duration::from_secs(if quick { 600 } else { 3600 });
    vm.extra_files = ["lesson-02", "lesson-03"]
        .iter()
        .map(|name| release.join(name))
        .chain((arch == Arch::X86_64).then(|| PathBuf::from(BPFTRACE)))
        .map(|path| (path.clone(), path))
        .collect();
    eprintln!("bench: {kernel} ({arch}) under TCG: a few minutes (--quick: about one)");
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
