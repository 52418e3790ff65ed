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
    // unpacks the XZ-compressed Debian kernels (see vm::kernels)
    pkg("xz-utils", "/usr/bin/xz"),
    pkg("binutils", "/usr/bin/strip"),
];

/// The tests' independent witnesses.
pub const TEST: &[Package] = &[pkg("bpftool", "/usr/sbin/bpftool")];

/// `cargo xtask bench`: the peer the lessons' start-up is compared with.
pub const BENCH: &[Package] = &[pkg("bpftrace", "/usr/bin/bpftrace")];

/// Install what is missing (as root), or say exactly what to run.
pub fn ensure(groups: &[&[Package]]) -> Result<()> {
    let missing: Vec<&str> = groups
        .iter()
        .flat_map(|group| group.iter())
        .filter(|package| !Path::new(package.provides).exists())
        .map(|package| package.name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "missing packages: {}; install them with `sudo apt-get install -y {}`",
            missing.join(" "),
            missing.join(" ")
        );
    }
    eprintln!("installing missing packages: {}", missing.join(" "));
    cmd::run(Command::new("apt-get").args(["update", "-qq"]))?;
    cmd::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq"])
            .args(&missing),
    )
}
