//! The Debian packages the project needs, installed with apt when root.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use crate::cmd;

/// A package and the file that proves it is installed.
pub struct Package {
    pub name: &'static str,
    pub provides: &'static str,
}

const fn pkg(name: &'static str, provides: &'static str) -> Package {
    Package { name, provides }
}

/// Building the lessons: clang compiles the BPF C; libbpf-sys builds libbpf.
pub const BUILD: &[Package] = &[
    pkg("clang", "/usr/bin/clang"),
    pkg("llvm", "/usr/bin/llvm-strip"),
    pkg("libelf-dev", "/usr/include/libelf.h"),
    pkg("zlib1g-dev", "/usr/include/zlib.h"),
    pkg("pkg-config", "/usr/bin/pkg-config"),
    pkg("make", "/usr/bin/make"),
];

/// Running lessons in QEMU.
pub const VM: &[Package] = &[
    pkg("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    pkg("busybox-static", "/bin/busybox"),
    // unpack the Debian kernels' vmlinux (see vm::kernels)
    pkg("xz-utils", "/usr/bin/xz"),
    pkg("zstd", "/usr/bin/zstd"),
    pkg("binutils", "/usr/bin/strip"),
];

/// Running arm64 lessons in QEMU, with [`VM`]. The guest's busybox and
/// kernels come from Debian's arm64 archive through a private apt (vm::apt).
pub const VM_ARM64: &[Package] = &[
    pkg("qemu-system-arm", "/usr/bin/qemu-system-aarch64"),
    // strips the aarch64 programs copied into the guest
    pkg(
        "binutils-aarch64-linux-gnu",
        "/usr/bin/aarch64-linux-gnu-strip",
    ),
];

/// Cross-building the lessons for arm64 (`cargo xtask build --arch arm64`).
pub const BUILD_ARM64: &[Package] = &[pkg(
    "gcc-aarch64-linux-gnu",
    "/usr/bin/aarch64-linux-gnu-gcc",
)];

/// The tests' independent witnesses.
pub const TEST: &[Package] = &[pkg("bpftool", "/usr/sbin/bpftool")];

/// `cargo xtask bench`: the peer the lessons' start-up is compared with.
pub const BENCH: &[Package] = &[pkg("bpftrace", "/usr/bin/bpftrace")];

/// Install what is missing (as root), or say exactly what to run.
pub fn ensure(groups: &[&[Package]]) -> Result<()> {
    ensure_as(groups, crate::workspace::is_root())
}

fn ensure_as(groups: &[&[Package]], root: bool) -> Result<()> {
    let mut missing: Vec<&str> = groups
        .iter()
        .flat_map(|group| group.iter())
        .filter(|package| !Path::new(package.provides).exists())
        .map(|package| package.name)
        .collect();
    missing.sort();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !root {
        bail!(
            "missing packages: {list}; install them with `sudo apt-get update && sudo apt-get install -y {list}`"
        );
    }
    eprintln!("installing missing packages: {list}");
    cmd::run(Command::new("apt-get").args(["update", "-qq"]))?;
    cmd::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq"])
            .args(&missing),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_told_the_exact_command() {
        const MISSING: &[Package] = &[
            pkg("xtask-test-a", "/nonexistent/a"),
            pkg("xtask-test-b", "/nonexistent/b"),
        ];
        const PRESENT: &[Package] = &[pkg("coreutils", "/")];
        let err = ensure_as(&[PRESENT, MISSING], false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing packages: xtask-test-a xtask-test-b; install them with \
             `sudo apt-get update && sudo apt-get install -y xtask-test-a xtask-test-b`"
        );
        assert!(ensure_as(&[PRESENT], false).is_ok());
    }
}
