//! Where the workspace and its target directory are, from any caller: the
//! xtask binary, or a test binary whose working directory is its own crate.

use std::path::PathBuf;

/// Running as root: apt installs and native BPF runs need it.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
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
