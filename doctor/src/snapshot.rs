//! `unlink-doctor snapshot DIR`: copy the files the doctor reads from this machine
//! into DIR, so `unlink-doctor --root DIR` (here or elsewhere) sees the same system.
//! Big files are cut down to the lines the doctor looks at; files that cannot be
//! read are listed with their errno in DIR/unlink-doctor-errors.
//!
//! It runs as root in a directory a user may own: DIR must be new or empty and
//! the user's or root's, every file and folder is created relative to a folder
//! it opened itself, never through a symlink, and nothing secret is copied
//! (kallsyms without addresses, each file no more readable than its source).

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{bail, Context, Result};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::parse::{config, mountinfo};
use crate::sysroot::{ReadError, SystemRoot, RECORDED_ERRORS};

/// How a file is copied.
#[derive(Clone, Copy)]
enum Copy {
    Whole,
    /// Only lines containing one of these words (available_filter_functions: megabytes).
    LinesWith(&'static [&'static str]),
    /// kallsyms lines about unlink, without the address: `T do_unlinkat`. Addresses
    /// would defeat KASLR; the doctor needs only names and types.
    SymbolsWith(&'static [&'static str]),
}

const UNLINK: &[&str] = &["unlink"];

/// Files the snapshot makes itself, readable by anyone like their sources in /proc.
const MADE_MODE: u32 = 0o444;

/// What was written, for the summary line.
pub struct Summary {
    pub copied: usize,
    pub unreadable: usize,
}

pub fn take(dir: &Path) -> Result<Summary> {
    let source = SystemRoot::native();
    let out = Output::create(dir)?;
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
    files.push(("/proc/kallsyms".into(), Copy::SymbolsWith(UNLINK)));
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
    let mut copied: Vec<String> = Vec::new();
    // A file system mounted twice lists its files twice; each is created only once.
    let mut seen = std::collections::HashSet::new();
    files.retain(|(path, _)| seen.insert(path.clone()));
    for (path, how) in files {
        match source.read_with_mode(&path) {
            Ok((bytes, mode)) => {
                let bytes = match how {
                    Copy::Whole => bytes,
                    Copy::LinesWith(words) => lines_with(&bytes, words, |line| line.to_string()),
                    Copy::SymbolsWith(words) => lines_with(&bytes, words, |line| {
                        line.split_whitespace()
                            .skip(1)
                            .collect::<Vec<_>>()
                            .join(" ")
                    }),
                };
                out.write(&path, &bytes, mode.bits())?;
                copied.push(path);
            }
            Err(ReadError::Missing) => {}
            Err(ReadError::Errno(errno)) => {
                let name = unlink_common::errno::name(errno).unwrap_or("EIO");
                let _ = writeln!(errors, "{path} {name}");
                summary.unreadable += 1;
            }
            // Not a regular file, too big, or not data: nothing worth copying.
            Err(ReadError::NotRegular(_) | ReadError::TooBig(_) | ReadError::Other(_)) => {}
        }
    }
    summary.copied = copied.len();
    // Before 6.1 there is no kernel.arch sysctl: record the machine for --root.
    let arch = "/proc/sys/kernel/arch";
    if !copied.iter().any(|p| p == arch) {
        let machine = source
            .read_line(arch)
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        out.write(arch, format!("{machine}\n").as_bytes(), MADE_MODE)?;
    }
    for patch in source.list("/sys/kernel/livepatch") {
        out.folder(&format!("/sys/kernel/livepatch/{patch}"))?;
    }
    out.write(RECORDED_ERRORS, errors.as_bytes(), MADE_MODE)?;
    Ok(summary)
}

/// The lines of `bytes` containing one of `words`, each rewritten by `keep`.
fn lines_with(bytes: &[u8], words: &[&str], keep: impl Fn(&str) -> String) -> Vec<u8> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|line| words.iter().any(|w| line.contains(w)))
        .fold(String::new(), |mut out, line| {
            let _ = writeln!(out, "{}", keep(line));
            out
        })
        .into_bytes()
}

/// The user who ran the doctor: under sudo the one in SUDO_UID, not root.
fn invoking_uid() -> u32 {
    let uid = rustix::process::getuid().as_raw();
    let sudo_uid = std::env::var("SUDO_UID").ok().and_then(|u| u.parse().ok());
    match (rustix::process::geteuid().is_root(), sudo_uid) {
        (true, Some(sudo_uid)) => sudo_uid,
        _ => uid,
    }
}

/// The snapshot's directory, opened once; everything is created relative to it.
struct Output {
    dir: OwnedFd,
    shown: String,
}

impl Output {
    /// Create DIR, or take an empty one owned by the invoking user or root.
    fn create(dir: &Path) -> Result<Output> {
        let shown = dir.display().to_string();
        match rustix::fs::mkdir(dir, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(err) => bail!("snapshot {shown}: cannot create it: {err}"),
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::open(dir, flags, Mode::empty()).map_err(|err| match err {
            Errno::LOOP | Errno::NOTDIR => anyhow::anyhow!(
                "snapshot {shown}: a symlink or not a directory; give a new directory (the snapshot never follows symlinks)"
            ),
            err => anyhow::anyhow!("snapshot {shown}: {err}"),
        })?;
        let owner = rustix::fs::fstat(&fd)
            .with_context(|| format!("snapshot {shown}"))?
            .st_uid;
        let user = invoking_uid();
        if owner != user && owner != 0 {
            bail!("snapshot {shown}: owned by uid {owner}, neither you (uid {user}) nor root; give a directory of your own");
        }
        let entries =
            rustix::fs::Dir::read_from(&fd).with_context(|| format!("snapshot {shown}"))?;
        let occupied = entries
            .map_while(Result::ok)
            .any(|e| e.file_name().to_bytes() != b"." && e.file_name().to_bytes() != b"..");
        if occupied {
            bail!("snapshot {shown}: not empty; give a new or empty directory (the snapshot never writes over files)");
        }
        Ok(Output { dir: fd, shown })
    }

    /// Open (creating as needed) the folder `path`, one component at a time, never following a symlink.
    fn folder(&self, path: &str) -> Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut dir = rustix::fs::openat(&self.dir, ".", flags, Mode::empty())?;
        for name in components(path)? {
            match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(err) => bail!("snapshot {}: creating {path}: {err}", self.shown),
            }
            dir = rustix::fs::openat(&dir, name, flags, Mode::empty()).map_err(|err| {
                anyhow::anyhow!(
                    "snapshot {}: opening {path}: {err} (a symlink is refused)",
                    self.shown
                )
            })?;
        }
        Ok(dir)
    }

    /// Create the new file `path` with `bytes`, permissions at most `mode`'s read and write bits.
    fn write(&self, path: &str, bytes: &[u8], mode: u32) -> Result<()> {
        let (parent, name) = path
            .trim_end_matches('/')
            .rsplit_once('/')
            .unwrap_or(("", path));
        let dir = self.folder(parent)?;
        components(name)?;
        // O_EXCL also refuses a symlink planted at the name, dangling or not.
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&dir, name, flags, Mode::from_raw_mode(mode & 0o666))
            .map_err(|err| anyhow::anyhow!("snapshot {}: creating {path}: {err}", self.shown))?;
        std::fs::File::from(fd)
            .write_all(bytes)
            .with_context(|| format!("snapshot {}: writing {path}", self.shown))
    }
}

/// The names in `path`; `.` and `..` would leave the folder and are refused.
fn components(path: &str) -> Result<Vec<&str>> {
    let names: Vec<&str> = path.split('/').filter(|n| !n.is_empty()).collect();
    if names.iter().any(|n| *n == "." || *n == "..") {
        bail!("refusing the path {path:?}: it has . or .. in it");
    }
    Ok(names)
}
