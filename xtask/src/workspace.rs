//! Where the workspace and its target directory are, from any caller: the
//! xtask binary, or a test binary whose working directory is its own crate.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::{flock, FlockOperation};

/// Running as root: apt installs and native BPF runs need it.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The workspace root, fixed at compile time (xtask lives in it).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `CARGO_TARGET_DIR` if set (a relative one taken from the workspace root),
/// else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// Kernels, logs and scratch space of `cargo xtask vm`.
pub fn vm_dir() -> PathBuf {
    target_dir().join("vm")
}

/// Hold `dir`'s lock file: parallel tests may want the same download, one
/// fetches and the others wait. Released when the returned file is closed.
pub fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(".lock");
    let lock = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    flock(&lock, FlockOperation::LockExclusive)
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(lock)
}
