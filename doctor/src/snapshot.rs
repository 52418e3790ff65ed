//! `unlink-doctor snapshot DIR`: copy the files the doctor reads from this machine
//! into DIR, so `unlink-doctor --root DIR` (here or elsewhere) sees the same system.
//! Big files are cut down to the lines the doctor looks at; files that cannot be
//! read are listed with their errno in DIR/unlink-doctor-errors.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::parse::{config, mountinfo};
use crate::sysroot::{ReadError, SystemRoot, RECORDED_ERRORS};

/// How a file is copied.
#[derive(Clone, Copy)]
enum Copy {
    Whole,
    /// Only lines containing one of these words (kallsyms, available_filter_functions: megabytes).
    LinesWith(&'static [&'static str]),
}

const UNLINK: &[&str] = &["unlink"];

/// What was written, for the summary line.
pub struct Summary {
    pub copied: usize,
    pub unreadable: usize,
}

pub fn take(dir: &Path) -> Result<Summary> {
    let source = SystemRoot::native();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let release = source
        .read_line("/proc/sys/kernel/osrelease")
        .unwrap_or_default();
    let mut files: Vec<(String, Copy)> = [
        "/proc/sys/kernel/osrelease",
        "/proc/sys/kernel/ostype",
        "/proc/sys/kernel/version",
        "/proc/sys/kernel/hostname",
        "/proc/sys/kernel/unprivileged_bpf_disabled",
        "/proc/sys/kernel/perf_event_paranoid",
        "/etc/os-release",
        "/usr/lib/os-release",
        "/proc/self/status",
        "/proc/self/uid_map",
        "/proc/self/limits",
        "/proc/self/mountinfo",
        "/proc/1/cgroup",
        "/proc/cmdline",
        "/sys/class/dmi/id/sys_vendor",
        "/sys/bus/event_source/devices/kprobe/type",
        "/sys/kernel/security/lockdown",
        "/sys/kernel/btf/vmlinux",
        "/.dockerenv",
        "/run/.containerenv",
        "/proc/sys/fs/binfmt_misc/WSLInterop",
    ]
    .iter()
    .map(|p| (p.to_string(), Copy::Whole))
    .collect();
    files.extend(
        config::candidates(&release)
            .into_iter()
            .map(|p| (p, Copy::Whole)),
    );
    files.push(("/proc/kallsyms".into(), Copy::LinesWith(UNLINK)));
    files.push((
        "/proc/cpuinfo".into(),
        Copy::LinesWith(&["processor\t: 0", "flags"]),
    ));
    let mounts = mountinfo::parse(&source.read_text("/proc/self/mountinfo").unwrap_or_default());
    let tracing_dirs = mountinfo::mount_points(&mounts, "tracefs")
        .into_iter()
        .map(str::to_string)
        .chain(
            mountinfo::mount_points(&mounts, "debugfs")
                .into_iter()
                .map(|d| format!("{d}/tracing")),
        );
    for dir in tracing_dirs {
        files.push((
            format!("{dir}/available_filter_functions"),
            Copy::LinesWith(UNLINK),
        ));
        files.push((format!("{dir}/kprobe_events"), Copy::Whole));
        files.push((format!("{dir}/tracing_on"), Copy::Whole));
    }
    for debugfs in mountinfo::mount_points(&mounts, "debugfs") {
        files.push((
            format!("{debugfs}/kprobes/blacklist"),
            Copy::LinesWith(UNLINK),
        ));
    }

    let mut summary = Summary {
        copied: 0,
        unreadable: 0,
    };
    let mut errors = String::new();
    for (path, how) in files {
        match source.read(&path) {
            Ok(bytes) => {
                let bytes = match how {
                    Copy::Whole => bytes,
                    Copy::LinesWith(words) => String::from_utf8_lossy(&bytes)
                        .lines()
                        .filter(|line| words.iter().any(|w| line.contains(w)))
                        .fold(String::new(), |mut out, line| {
                            let _ = writeln!(out, "{line}");
                            out
                        })
                        .into_bytes(),
                };
                write(dir, &path, &bytes)?;
                summary.copied += 1;
            }
            Err(ReadError::Missing) => {}
            Err(ReadError::Errno(errno)) => {
                let name = unlink_common::errno::name(errno).unwrap_or("EIO");
                let _ = writeln!(errors, "{path} {name}");
                summary.unreadable += 1;
            }
            Err(ReadError::NotRegular(_) | ReadError::TooBig(_) | ReadError::Other(_)) => {}
        }
    }
    // Before 6.1 there is no kernel.arch sysctl: record the machine for --root.
    if !dir.join("proc/sys/kernel/arch").exists() {
        let machine = source
            .read_line("/proc/sys/kernel/arch")
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        write(
            dir,
            "/proc/sys/kernel/arch",
            format!("{machine}\n").as_bytes(),
        )?;
    }
    for patch in source.list("/sys/kernel/livepatch") {
        std::fs::create_dir_all(dir.join("sys/kernel/livepatch").join(patch))?;
    }
    write(dir, RECORDED_ERRORS, errors.as_bytes())?;
    Ok(summary)
}

fn write(dir: &Path, path: &str, bytes: &[u8]) -> Result<()> {
    let target = dir.join(path.trim_start_matches('/'));
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&target, bytes).with_context(|| format!("writing {}", target.display()))
}
