//! `cargo xtask try lesson-02`: the newcomer's one command. Build the lesson,
//! run it natively if this kernel can, else in the default VM, with a few
//! unlinks to watch, and say where it ran and why. `--arch arm64 --kernel K`
//! runs the arm64 build on Debian's arm64 kernel K (lesson-03 on debian-5.10:
//! the chapter's -524 and its explanation in one command).

use std::process::{Command, ExitCode};

use anyhow::{Context, Result};

use crate::cmd::{self, cargo};
use crate::vm::{Arch, VmRun};
use crate::{build, deps, workspace};

/// A success, a failure, a name with a space and one in UTF-8.
const WORKLOAD: &str = "cd \"$(mktemp -d)\" && touch 'hello world.txt' 你好.txt && \
    rm 'hello world.txt' 你好.txt && unlink missing.txt 2>/dev/null; true";

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Lesson {
    /// kprobe + kretprobe
    #[value(name = "lesson-02")]
    Lesson02,
    /// fentry + fexit
    #[value(name = "lesson-03")]
    Lesson03,
}

impl Lesson {
    fn name(self) -> &'static str {
        match self {
            Lesson::Lesson02 => "lesson-02",
            Lesson::Lesson03 => "lesson-03",
        }
    }
}

/// `--arch arm64` (with `--kernel`): straight to Debian's arm64 kernel in
/// QEMU, e.g. lesson-03 on debian-5.10 for the chapter's -524.
pub fn run(lesson: Lesson, arch: Arch, kernel: &str) -> Result<ExitCode> {
    let name = lesson.name();
    if arch == Arch::Arm64 {
        deps::ensure(&[deps::VM, deps::VM_ARM64])?;
        let dir = build::run(&build::Args {
            arch,
            release: false,
        })?;
        eprintln!("\n== {name}: running on Debian's {kernel} kernel for arm64 in QEMU");
        return in_vm(name, dir.join(name), arch, kernel);
    }
    deps::ensure(&[deps::BUILD, deps::VM])?;
    cmd::run(cargo().args(["build", "--package", name]))?;
    let binary = workspace::target_dir().join("debug").join(name);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();

    let why_vm = if workspace::is_root() {
        eprintln!("\n== {name}: trying natively on this kernel (Linux {release})");
        let mut native = Command::new(&binary);
        native.args(["--", "sh", "-c", WORKLOAD]);
        cmd::echo(&native);
        let status = native
            .status()
            .with_context(|| format!("running {}", binary.display()))?;
        if status.success() {
            eprintln!("\n== {name} ran natively on Linux {release}.");
            return Ok(ExitCode::SUCCESS);
        }
        format!(
            "this kernel (Linux {release}) cannot run {name}: see the error above; for the full diagnosis: \
             cargo build --release -p unlink-doctor && sudo install -m 0755 target/release/unlink-doctor /usr/local/bin/ && sudo unlink-doctor"
        )
    } else {
        format!(
            "loading BPF programs natively needs root (sudo {}); a VM needs none",
            binary.display()
        )
    };

    eprintln!("\n== {name}: running in a VM instead, because {why_vm}");
    in_vm(name, binary, Arch::X86_64, kernel)
}

fn in_vm(name: &str, binary: std::path::PathBuf, arch: Arch, kernel: &str) -> Result<ExitCode> {
    let mut run = VmRun::new(
        kernel,
        [
            binary.display().to_string(),
            "--".into(),
            "sh".into(),
            "-c".into(),
            WORKLOAD.into(),
        ],
    );
    run.arch = arch;
    let status = run.run_streaming()?;
    eprintln!(
        "\n== {name} ran in QEMU on Debian's {arch} {kernel} kernel under software emulation."
    );
    Ok(ExitCode::from(status as u8))
}
