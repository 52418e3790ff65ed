//! The one way the doctor reads the system: every file path is relative to a
//! system root, `/` normally or `--root DIR` for a snapshot of another machine.
//! A snapshot can also record files that could not be read (see README.md):
//! they fail here with the recorded errno, as they did on the original machine.
//!
//! A snapshot is untrusted input read by root: every path, including symlinks
//! and paths taken from the snapshot's own files (mountinfo), resolves inside
//! DIR (`openat2` with `RESOLVE_IN_ROOT`); only regular files are read, opened
//! without blocking (a FIFO), and each read is capped to what fits that file.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use unlink_common::errno;

/// Where a snapshot lists the files that were unreadable on its machine: `PATH ERRNO_NAME` lines.
pub const RECORDED_ERRORS: &str = "unlink-doctor-errors";

/// The kernel's BTF, the biggest file the doctor reads (about 6 MB on Debian's kernels).
pub const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

/// The most the doctor reads of `path`: each limit is several times the biggest real file,
/// so a bigger one is not what it claims to be and is refused rather than read.
pub fn max_bytes(path: &str) -> u64 {
    const MIB: u64 = 1 << 20;
    match path.trim_end_matches('/') {
        BTF_PATH => 128 * MIB,
        // About 5 MB with modules; available_filter_functions about 2 MB.
        "/proc/kallsyms" => 64 * MIB,
        p if p.ends_with("/available_filter_functions") => 32 * MIB,
        p if p.ends_with("/kprobes/blacklist") => 8 * MIB,
        // Kernel configs: about 300 KB plain, 60 KB gzipped.
        p if p.ends_with("config.gz") || p.ends_with("config") || p.contains("/config-") => 8 * MIB,
        // Thousands of mounts on a busy container host, hundreds of CPUs.
        "/proc/self/mountinfo" | "/proc/cpuinfo" => 8 * MIB,
        // sysctls, os-release, status, limits, cgroup, cmdline, the recorded errors.
        _ => 64 << 10,
    }
}

#[derive(Debug)]
pub struct SystemRoot {
    dir: PathBuf,
    /// The snapshot's directory, which every path resolves in; `None` for the running system.
    fd: Option<OwnedFd>,
    recorded_errors: HashMap<String, i32>,
}

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    Missing,
    /// The errno of the failed open or read, such as EPERM or EACCES.
    Errno(i32),
    /// A FIFO, device, socket or directory where a file should be.
    NotRegular(&'static str),
    /// Bigger than [`max_bytes`] allows for this file.
    TooBig(u64),
    /// Not an errno: invalid data, and so on.
    Other(String),
}

impl ReadError {
    fn from_errno(err: Errno) -> ReadError {
        match err {
            Errno::NOENT => ReadError::Missing,
            err => ReadError::Errno(err.raw_os_error()),
        }
    }

    fn from_io(err: &std::io::Error) -> ReadError {
        match err.raw_os_error() {
            Some(errno) => ReadError::from_errno(Errno::from_raw_os_error(errno)),
            None => ReadError::Other(err.to_string()),
        }
    }

    pub fn is_permission(&self) -> bool {
        matches!(self, ReadError::Errno(libc::EPERM | libc::EACCES))
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Missing => f.write_str("missing"),
            ReadError::Errno(n) => write!(
                f,
                "{} ({})",
                errno::name(*n).unwrap_or("error"),
                strerror(*n)
            ),
            ReadError::NotRegular(kind) => {
                write!(f, "not a regular file but {kind}: refused")
            }
            ReadError::TooBig(max) => write!(
                f,
                "bigger than {} KiB, more than any real one: refused",
                max >> 10
            ),
            ReadError::Other(text) => f.write_str(text),
        }
    }
}

/// The C library's text for `errno`, as `Operation not permitted`.
pub fn strerror(errno: i32) -> String {
    std::io::Error::from_raw_os_error(errno)
        .to_string()
        .split(" (os error")
        .next()
        .unwrap_or_default()
        .to_string()
}

fn kind_of(file_type: FileType) -> &'static str {
    match file_type {
        FileType::Fifo => "a FIFO",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Socket => "a socket",
        FileType::Directory => "a directory",
        _ => "an unknown kind of file",
    }
}

impl SystemRoot {
    /// The running system.
    pub fn native() -> SystemRoot {
        SystemRoot {
            dir: PathBuf::from("/"),
            fd: None,
            recorded_errors: HashMap::new(),
        }
    }

    /// A snapshot of a system under `dir`.
    pub fn at(dir: &Path) -> Result<SystemRoot, String> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(dir, flags, Mode::empty())
            .map_err(|err| format!("--root {}: {err}", dir.display()))?;
        // Old kernels lack openat2, and old container seccomp profiles refuse it with EPERM.
        let probe = OFlags::PATH | OFlags::CLOEXEC;
        if let Err(err @ (Errno::NOSYS | Errno::PERM)) =
            rustix::fs::openat2(&fd, ".", probe, Mode::empty(), ResolveFlags::IN_ROOT)
        {
            return Err(format!(
                "--root {}: openat2 failed ({err}); it keeps every path inside the snapshot: read it on Linux 5.6 or later, outside a seccomp profile that blocks openat2",
                dir.display()
            ));
        }
        let mut root = SystemRoot {
            dir: dir.to_path_buf(),
            fd: Some(fd),
            recorded_errors: HashMap::new(),
        };
        // A recorded-errors file that cannot be read records nothing.
        if let Ok(text) = root.read_text(RECORDED_ERRORS) {
            root.recorded_errors = parse_recorded_errors(&text);
        }
        Ok(root)
    }

    pub fn is_native(&self) -> bool {
        self.fd.is_none()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn recorded(&self, path: &str) -> Option<ReadError> {
        let key = format!("/{}", path.trim_start_matches('/'));
        self.recorded_errors
            .get(&key)
            .map(|&errno| ReadError::Errno(errno))
    }

    /// Open `path` (absolute as on the system) under the root; symlinks resolve inside it.
    fn open(&self, path: &str, flags: OFlags) -> Result<OwnedFd, ReadError> {
        if let Some(err) = self.recorded(path) {
            return Err(err);
        }
        let flags = flags | OFlags::CLOEXEC;
        let Some(dir) = &self.fd else {
            let path = format!("/{}", path.trim_start_matches('/'));
            return rustix::fs::open(path, flags, Mode::empty()).map_err(ReadError::from_errno);
        };
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        let relative = match path.trim_start_matches('/') {
            "" => ".",
            relative => relative,
        };
        // EAGAIN: a rename raced the lookup, which the kernel refuses to resolve: try again.
        let mut result = Err(Errno::AGAIN);
        for _ in 0..8 {
            result = rustix::fs::openat2(dir, relative, flags, Mode::empty(), resolve);
            if !matches!(result, Err(Errno::AGAIN)) {
                break;
            }
        }
        result.map_err(ReadError::from_errno)
    }

    /// (openat2 refuses O_PATH with any flag but O_CLOEXEC, O_DIRECTORY and O_NOFOLLOW.)
    pub fn exists(&self, path: &str) -> bool {
        self.open(path, OFlags::PATH).is_ok()
    }

    /// The bytes of a regular file and its permission bits, at most [`max_bytes`] of it.
    pub fn read_with_mode(&self, path: &str) -> Result<(Vec<u8>, Mode), ReadError> {
        // O_NONBLOCK: opening a FIFO for reading would wait for a writer forever.
        let fd = self.open(path, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY)?;
        let stat = rustix::fs::fstat(&fd).map_err(ReadError::from_errno)?;
        let file_type = FileType::from_raw_mode(stat.st_mode);
        if file_type != FileType::RegularFile {
            return Err(ReadError::NotRegular(kind_of(file_type)));
        }
        let max = max_bytes(path);
        // A snapshot's files have their size; /proc and /sys report 0 or 4096 and are read.
        if u64::try_from(stat.st_size).unwrap_or(0) > max {
            return Err(ReadError::TooBig(max));
        }
        let mut bytes = Vec::new();
        File::from(fd)
            .take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ReadError::from_io(&e))?;
        if bytes.len() as u64 > max {
            return Err(ReadError::TooBig(max));
        }
        Ok((bytes, Mode::from_raw_mode(stat.st_mode)))
    }

    /// The bytes of a regular file, at most [`max_bytes`] of it.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, ReadError> {
        self.read_with_mode(path).map(|(bytes, _)| bytes)
    }

    /// A file as text (invalid UTF-8 replaced).
    pub fn read_text(&self, path: &str) -> Result<String, ReadError> {
        self.read(path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The first line of a small file, trimmed; `None` when unreadable or empty.
    pub fn read_line(&self, path: &str) -> Option<String> {
        let text = self.read_text(path).ok()?;
        Some(text.lines().next()?.trim().to_string()).filter(|line| !line.is_empty())
    }

    /// The names in a directory (at most a thousand), sorted; empty when it cannot be listed.
    pub fn list(&self, path: &str) -> Vec<String> {
        let Ok(fd) = self.open(path, OFlags::RDONLY | OFlags::DIRECTORY) else {
            return Vec::new();
        };
        let Ok(dir) = rustix::fs::Dir::read_from(&fd) else {
            return Vec::new();
        };
        let mut names: Vec<String> = dir
            .map_while(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name != "." && name != "..")
            .take(1000)
            .collect();
        names.sort();
        names
    }
}

/// `/sys/kernel/tracing/available_filter_functions EPERM` lines; unknown names and junk are skipped.
pub fn parse_recorded_errors(text: &str) -> HashMap<String, i32> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let path = fields.next().filter(|p| p.starts_with('/'))?;
            let errno = errno::from_name(fields.next()?)?;
            Some((path.to_string(), errno))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_errors_parse_and_apply() {
        let errors = parse_recorded_errors(
            "/sys/kernel/tracing/available_filter_functions EPERM\njunk\n/x ENOPE\n",
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors["/sys/kernel/tracing/available_filter_functions"],
            libc::EPERM
        );
        let root = SystemRoot {
            recorded_errors: errors,
            ..SystemRoot::native()
        };
        let err = root
            .read("sys/kernel/tracing/available_filter_functions")
            .unwrap_err();
        assert!(err.is_permission());
        assert_eq!(err.to_string(), "EPERM (Operation not permitted)");
        assert!(!root.exists("/sys/kernel/tracing/available_filter_functions"));
    }

    proptest::proptest! {
        #[test]
        fn recorded_errors_never_panic(text in ".{0,300}") {
            let _ = parse_recorded_errors(&text);
        }
    }

    #[test]
    fn missing_files_and_roots() {
        assert!(SystemRoot::at(Path::new("/nonexistent-root")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let root = SystemRoot::at(dir.path()).unwrap();
        assert_eq!(root.read("proc/version"), Err(ReadError::Missing));
        assert!(root.list("proc").is_empty());
        assert_eq!(root.read_line("proc/version"), None);
    }

    #[test]
    fn every_file_read_has_a_cap_that_fits_it() {
        assert_eq!(max_bytes("/proc/sys/kernel/osrelease"), 64 << 10);
        assert!(max_bytes(BTF_PATH) > max_bytes("/proc/kallsyms"));
        assert_eq!(max_bytes("/boot/config-6.1.0-50-amd64"), 8 << 20);
        assert_eq!(
            max_bytes("/sys/kernel/debug/tracing/available_filter_functions"),
            32 << 20
        );
    }
}
