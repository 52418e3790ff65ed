//! The directory a private apt configuration works in (apt.rs): a fresh
//! temporary directory that apt's sandbox user `_apt` can reach, so that
//! root's apt downloads as `_apt` and never as root, whatever the workspace
//! path (a home directory of mode 0700, a name with spaces).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::unistd::User;

/// apt's sandbox user.
const SANDBOX_USER: &str = "_apt";

pub struct AptRoot {
    dir: tempfile::TempDir,
    /// uid and gid of `_apt` when running as root on a system that has it.
    sandbox: Option<(u32, u32)>,
}

impl AptRoot {
    pub fn new() -> Result<AptRoot> {
        let mut parent = std::env::temp_dir();
        // apt's one-line sources cannot quote a path with spaces
        if parent.to_string_lossy().contains(char::is_whitespace) {
            parent = PathBuf::from("/tmp");
        }
        let dir = tempfile::Builder::new()
            .prefix("xtask-apt-")
            // readable by _apt (keyring, sources); writable only where it downloads
            .permissions(fs::Permissions::from_mode(0o755))
            .tempdir_in(&parent)
            .with_context(|| format!("creating a directory for apt in {}", parent.display()))?;
        let sandbox = if crate::workspace::is_root() {
            user_ids(SANDBOX_USER)
        } else {
            None
        };
        Ok(AptRoot { dir, sandbox })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A directory apt reads from, created under the root.
    pub fn dir(&self, relative: &str) -> Result<PathBuf> {
        let path = self.path().join(relative);
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(path)
    }

    /// A directory apt downloads into: owned by `_apt` where it exists.
    pub fn download_dir(&self, relative: &str) -> Result<PathBuf> {
        let path = self.dir(relative)?;
        if let Some((uid, gid)) = self.sandbox {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                .with_context(|| format!("giving {} to {SANDBOX_USER}", path.display()))?;
        }
        Ok(path)
    }

    /// A copy of `keyring` inside the root, readable by `_apt`, at a path
    /// without spaces for `[signed-by=...]`.
    pub fn keyring(&self, keyring: &Path) -> Result<PathBuf> {
        let copy = self.path().join("keyring.gpg");
        fs::copy(keyring, &copy).with_context(|| format!("copying {}", keyring.display()))?;
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o644))?;
        Ok(copy)
    }
}

fn user_ids(name: &str) -> Option<(u32, u32)> {
    let user = User::from_name(name).ok()??;
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn downloads_belong_to_the_sandbox_user_and_keyrings_lose_their_spaces() {
        let root = AptRoot::new().unwrap();
        assert!(!root.path().to_string_lossy().contains(' '));
        let partial = root.download_dir("state/lists/partial").unwrap();
        let owner = fs::metadata(&partial).unwrap().uid();
        match (crate::workspace::is_root(), user_ids(SANDBOX_USER)) {
            (true, Some((uid, _))) => assert_eq!(owner, uid, "root's apt must download as _apt"),
            _ => assert_eq!(owner, rustix::process::geteuid().as_raw()),
        }
        let spaced = tempfile::Builder::new()
            .prefix("a workspace with spaces ")
            .tempdir()
            .unwrap();
        let original = spaced.path().join("debian archive keyring.gpg");
        fs::write(&original, b"key").unwrap();
        let copy = root.keyring(&original).unwrap();
        assert!(copy.starts_with(root.path()));
        assert!(!copy.to_string_lossy().contains(' '));
        assert_eq!(fs::read(&copy).unwrap(), b"key");
        assert_eq!(fs::metadata(&copy).unwrap().mode() & 0o777, 0o644);
    }
}
