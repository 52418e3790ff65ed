//! `cargo xtask build --arch arm64`: the lessons, their steps and
//! unlink-doctor cross-built for aarch64 into
//! target/aarch64-unknown-linux-gnu/{debug,release}/, as static programs
//! that run in `cargo xtask vm --arch arm64` or on any arm64 Linux.
//!
//! Debian's cross gcc compiles libbpf; libelf, zlib and zstd come from
//! Debian's arm64 packages unpacked into a private sysroot under target/
//! (never `dpkg --add-architecture` on the user's system). The BPF objects
//! get `-D__TARGET_ARCH_arm64` from libbpf-cargo, which reads cargo's
//! target architecture.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cmd::cargo;
use crate::vm::apt::PrivateApt;
use crate::vm::Arch;
use crate::{cmd, deps, workspace};

#[derive(clap::Args)]
pub struct Args {
    /// The architecture to build for (x86_64 is a plain `cargo build`)
    #[arg(long, value_enum, default_value_t = Arch::X86_64)]
    pub arch: Arch,
    /// Optimised build, into target/TRIPLE/release/
    #[arg(long)]
    pub release: bool,
}

/// The arm64 libraries libbpf links against: headers and static archives.
const SYSROOT_PACKAGES: [&str; 6] = [
    "libelf-dev",
    "libelf1",
    "zlib1g-dev",
    "zlib1g",
    "libzstd-dev",
    "libzstd1",
];
/// The Debian suite of the sysroot: glibc no newer than the cross gcc's.
const SYSROOT_SUITE: &str = "bookworm";

/// Build every workspace program that loads BPF (lessons, steps, doctor; not
/// the exercises, which are checked in x86_64 VMs) for `args.arch`; returns
/// the directory the programs are in.
pub fn run(args: &Args) -> Result<PathBuf> {
    packages(args, &bpf_packages()?)
}

/// Build the programs of these workspace packages for `args.arch`; returns
/// the directory the programs are in.
pub fn packages(args: &Args, packages: &[String]) -> Result<PathBuf> {
    let profile = if args.release { "release" } else { "debug" };
    let mut build = cargo();
    build.arg("build").arg("--bins");
    for package in packages {
        build.args(["--package", package]);
    }
    if args.release {
        build.arg("--release");
    }
    if args.arch == Arch::X86_64 {
        deps::ensure(&[deps::BUILD])?;
        cmd::run(&mut build)?;
        return Ok(workspace::target_dir().join(profile));
    }

    deps::ensure(&[deps::BUILD, deps::BUILD_ARM64])?;
    let target = args.arch.rust_target();
    ensure_rust_std(target)?;
    let sysroot = sysroot(args.arch)?;
    let include = sysroot.join("usr/include");
    let libs = sysroot.join("usr/lib/aarch64-linux-gnu");
    let var = target.replace('-', "_");
    let upper = var.to_uppercase();
    build
        .args(["--target", target])
        .env(format!("CC_{var}"), "aarch64-linux-gnu-gcc")
        .env(format!("CFLAGS_{var}"), format!("-I{}", include.display()))
        .env(format!("LIBBPF_SYS_LIBRARY_PATH_{var}"), &libs)
        .env(
            format!("CARGO_TARGET_{upper}_LINKER"),
            "aarch64-linux-gnu-gcc",
        )
        // Static: the guest (and a learner's board) need no arm64 libraries.
        // libelf needs zstd, which libbpf-sys does not name.
        .env(
            format!("CARGO_TARGET_{upper}_RUSTFLAGS"),
            format!(
                "-C target-feature=+crt-static -C link-arg=-lzstd -L native={}",
                libs.display()
            ),
        );
    let started = Instant::now();
    cmd::run(&mut build)?;
    let out = workspace::target_dir().join(target).join(profile);
    eprintln!(
        "built {} for {} in {:.0} s: {}",
        packages.join(", "),
        args.arch,
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(out)
}

/// The workspace packages outside exercises/ that depend on libbpf-rs and
/// have programs.
fn bpf_packages() -> Result<Vec<String>> {
    let exercises = workspace::root().join("exercises");
    let metadata = cmd::output(cargo().args(["metadata", "--format-version=1", "--no-deps"]))?;
    let metadata: serde_json::Value =
        serde_json::from_str(&metadata).context("parsing `cargo metadata`")?;
    let mut names = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let depends = |name: &str| {
            package["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|dep| dep["name"] == name && dep["kind"].is_null())
        };
        let has_bin = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| {
                t["kind"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k == "bin")
            });
        let exercise = package["manifest_path"]
            .as_str()
            .is_some_and(|path| Path::new(path).starts_with(&exercises));
        if depends("libbpf-rs") && has_bin && !exercise {
            names.extend(package["name"].as_str().map(str::to_string));
        }
    }
    if names.is_empty() {
        bail!("no workspace package with programs depends on libbpf-rs");
    }
    names.sort();
    Ok(names)
}

/// rust-std for the target, added with rustup when missing.
fn ensure_rust_std(target: &str) -> Result<()> {
    let fix = format!("rustup target add {target}");
    let installed = cmd::output(Command::new("rustup").args(["target", "list", "--installed"]))
        .with_context(|| format!("cannot list Rust targets: install rustup, then run `{fix}`"))?;
    if installed.lines().any(|line| line.trim() == target) {
        return Ok(());
    }
    cmd::run(Command::new("rustup").args(["target", "add", target])).with_context(|| {
        format!("the Rust standard library for {target} could not be fetched: run `{fix}` where the network allows it")
    })
}

/// target/sysroot-arm64: Debian's arm64 libelf, zlib and zstd (headers,
/// static archives), downloaded once.
fn sysroot(arch: Arch) -> Result<PathBuf> {
    let dir = workspace::target_dir().join(format!("sysroot-{}", arch.debian()));
    let stamp = dir.join("packages");
    let wanted = SYSROOT_PACKAGES.join("\n") + "\n";
    if fs::read_to_string(&stamp).is_ok_and(|text| text == wanted) {
        return Ok(dir);
    }
    let apt = PrivateApt::verified(&[SYSROOT_SUITE], arch)?;
    // Unpacked next to its place, so that the rename stays on one file system.
    let target = workspace::target_dir();
    fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
    let unpacked = tempfile::Builder::new()
        .prefix("sysroot-")
        .tempdir_in(&target)
        .with_context(|| format!("creating a directory in {}", target.display()))?;
    apt.unpack_into(&SYSROOT_PACKAGES, unpacked.path())?;
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::rename(unpacked.path(), &dir)
        .with_context(|| format!("moving the sysroot to {}", dir.display()))?;
    for file in ["usr/include/libelf.h", "usr/include/zlib.h"] {
        if !dir.join(file).is_file() {
            bail!(
                "the arm64 sysroot has no {file}: {} changed in Debian {SYSROOT_SUITE}",
                SYSROOT_PACKAGES.join(" ")
            );
        }
    }
    // Written last: its presence marks a complete sysroot.
    fs::write(&stamp, wanted)?;
    Ok(dir)
}
