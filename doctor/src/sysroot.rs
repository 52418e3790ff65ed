//! The one way the doctor reads the system: every file path is relative to a
//! system root, `/` normally or `--root DIR` for a snapshot of another machine.
//! A snapshot can also record files that could not be read (see README.md):
//! they fail here with the recorded errno, as they did on the original machine.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use unlink_common::errno;

/// Where a snapshot lists the files that were unreadable on its machine: `PATH ERRNO_NAME` lines.
pub const RECORDED_ERRORS: &str = "unlink-doctor-errors";

/// Nothing the doctor reads is legitimately bigger than this (a decompressed config is about 300 KB,
/// vmlinux BTF about 6 MB, kallsyms about 10 MB); bigger files are cut here rather than exhaust memory.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone)]
pub struct SystemRoot {
    dir: PathBuf,
    recorded_errors: HashMap<String, i32>,
}

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    Missing,
    /// The errno of the failed open or read, such as EPERM or EACCES.
    Errno(i32),
    /// Not an errno: a directory, invalid data, and so on.
    Other(String),
}

impl ReadError {
    fn from_io(err: &std::io::Error) -> ReadError {
        match (err.kind(), err.raw_os_error()) {
            (std::io::ErrorKind::NotFound, _) => ReadError::Missing,
            (_, Some(errno)) => ReadError::Errno(errno),
            _ => ReadError::Other(err.to_string()),
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

impl SystemRoot {
    /// The running system.
    pub fn native() -> SystemRoot {
        SystemRoot {
            dir: PathBuf::from("/"),
            recorded_errors: HashMap::new(),
        }
    }

    /// A snapshot of a system under `dir`.
    pub fn at(dir: &Path) -> SystemRoot {
        let text = std::fs::read_to_string(dir.join(RECORDED_ERRORS)).unwrap_or_default();
        SystemRoot {
            dir: dir.to_path_buf(),
            recorded_errors: parse_recorded_errors(&text),
        }
    }

    pub fn is_native(&self) -> bool {
        self.dir == Path::new("/")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The real path of `path` (absolute as on the system, like `/proc/config.gz`).
    pub fn path(&self, path: &str) -> PathBuf {
        self.dir.join(path.trim_start_matches('/'))
    }

    fn recorded(&self, path: &str) -> Option<ReadError> {
        let key = format!("/{}", path.trim_start_matches('/'));
        self.recorded_errors
            .get(&key)
            .map(|&errno| ReadError::Errno(errno))
    }

    pub fn exists(&self, path: &str) -> bool {
        self.recorded(path).is_none() && self.path(path).exists()
    }

    /// The bytes of a file, at most [`MAX_FILE_BYTES`].
    pub fn read(&self, path: &str) -> Result<Vec<u8>, ReadError> {
        if let Some(err) = self.recorded(path) {
            return Err(err);
        }
        let file = std::fs::File::open(self.path(path)).map_err(|e| ReadError::from_io(&e))?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| ReadError::from_io(&e))?;
        Ok(bytes)
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

    /// The names in a directory, sorted; empty when it cannot be listed.
    pub fn list(&self, path: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(path))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
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
            dir: PathBuf::from("/"),
            recorded_errors: errors,
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
    fn missing_files_and_paths() {
        let root = SystemRoot::at(Path::new("/nonexistent-root"));
        assert_eq!(root.read("proc/version"), Err(ReadError::Missing));
        assert_eq!(
            root.path("/proc/version"),
            Path::new("/nonexistent-root/proc/version")
        );
        assert!(root.list("proc").is_empty());
        assert_eq!(root.read_line("proc/version"), None);
    }
}
