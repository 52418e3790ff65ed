//! `cargo xtask test`: everything CI checks, from a fresh clone.

use anyhow::{Context, Result};

use crate::cmd::{self, cargo};
use crate::vm::{kernels, Arch};
use crate::{build, deps};

/// The arm64 kernels CI boots: the oldest (fentry fails with -524) and the
/// default (both lessons work). `--arm64-all` adds 6.1 (-524 too) and 7.2.
const ARM64_CI: [&str; 2] = ["debian-5.10", "debian-6.12"];

#[derive(clap::Args)]
pub struct Args {
    /// Also run the arm64 tests on debian-6.1 and debian-7.2 (the tests named
    /// `arm64_all`), beyond CI's 5.10 and 6.12
    #[arg(long)]
    pub arm64_all: bool,
}

pub fn run(args: &Args) -> Result<()> {
    deps::ensure(&[deps::BUILD, deps::VM, deps::VM_ARM64, deps::TEST])?;
    // Style and lints first: they take seconds, the VM runs take minutes.
    // (Without the components: `rustup component add rustfmt clippy`.)
    cmd::run(cargo().args(["fmt", "--all", "--check"]))
        .context("cargo fmt: the code above is not formatted; run `cargo fmt --all`")?;
    cmd::run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
    .context("cargo clippy: fix the lints above (levels: [workspace.lints] in Cargo.toml)")?;
    // The end-to-end tests run these binaries, natively and in the VMs.
    cmd::run(cargo().args(["build", "--workspace", "--bins"]))?;
    build::run(&build::Args {
        arch: Arch::Arm64,
        release: false,
    })?;
    for kernel in kernels::MATRIX {
        kernels::fetch(kernel)?;
    }
    let arm64: &[&str] = if args.arm64_all {
        &kernels::MATRIX
    } else {
        &ARM64_CI
    };
    for kernel in arm64 {
        kernels::fetch_for(Arch::Arm64, kernel)?;
    }
    // --include-ignored: the end-to-end tests are ignored in a plain `cargo test`
    // because they need the binaries, QEMU and the kernels prepared above.
    let mut test = cargo();
    test.args(["test", "--workspace", "--", "--include-ignored"]);
    if !args.arm64_all {
        test.args(["--skip", "arm64_all"]);
    }
    cmd::run(&mut test)?;
    // Every exercise's starting point fails its check and its solution passes.
    crate::exercise::ci(&crate::exercise::CI_KERNELS)?;
    // The book: sources, build, links, search, a real browser, and its transcripts
    // re-run against the binaries built above.
    crate::book::run(crate::book::Task::Check)?;
    // Every benchmark, briefly, so the bench cannot rot (no pass/fail on speed).
    crate::bench::run(&crate::bench::Args::quick())?;
    Ok(())
}
