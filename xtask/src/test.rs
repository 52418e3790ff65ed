//! `cargo xtask test`: everything CI checks, from a fresh clone.

use anyhow::{Context, Result};

use crate::cmd::{self, cargo};
use crate::deps;
use crate::vm::kernels;

pub fn run() -> Result<()> {
    deps::ensure(&[deps::BUILD, deps::VM, deps::TEST])?;
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
    for kernel in kernels::MATRIX {
        kernels::fetch(kernel)?;
    }
    // --include-ignored: the end-to-end tests are ignored in a plain `cargo test`
    // because they need the binaries, QEMU and the kernels prepared above.
    cmd::run(cargo().args(["test", "--workspace", "--", "--include-ignored"]))?;
    // Every exercise's starting point fails its check and its solution passes.
    crate::exercise::ci(&crate::exercise::CI_KERNELS)?;
    // The book: sources, build, links, search, a real browser, and its transcripts
    // re-run against the binaries built above.
    crate::book::run(crate::book::Task::Check)?;
    // Every benchmark, briefly, so the bench cannot rot (no pass/fail on speed).
    crate::bench::run(&crate::bench::Args::quick())?;
    Ok(())
}
