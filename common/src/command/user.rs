//! Who runs the command: the user behind `sudo`, as login would set them up.

use std::ffi::{CString, OsStr, OsString};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use nix::unistd::{self, Gid, Uid, User};

/// The unprivileged user the command runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
    /// Supplementary groups, the primary group among them, as login would set them.
    pub groups: Vec<Gid>,
    pub home: PathBuf,
}

impl RunAs {
    /// The user who ran `sudo`, when this process is root because of it; `None`
    /// when not root, not under sudo, or sudo was run by root. `var` reads the environment.
    pub fn sudo_user(euid: Uid, var: impl Fn(&str) -> Option<OsString>) -> Result<Option<RunAs>> {
        let Some(uid) = var("SUDO_UID") else {
            return Ok(None);
        };
        let uid = parse_id("SUDO_UID", &uid)?;
        if !euid.is_root() || uid == 0 {
            return Ok(None);
        }
        let not_a_user = || {
            format!(
                "SUDO_UID={uid} is not in the user database, so the command cannot run as that user: \
                 pass --as-root to run it as root"
            )
        };
        // SUDO_USER picks among names that share the uid; the uid decides.
        let named = var("SUDO_USER")
            .and_then(|name| User::from_name(&name.to_string_lossy()).ok().flatten())
            .filter(|user| user.uid.as_raw() == uid);
        let user = match named {
            Some(user) => user,
            None => User::from_uid(Uid::from_raw(uid))
                .with_context(not_a_user)?
                .with_context(not_a_user)?,
        };
        let gid = match var("SUDO_GID") {
            Some(gid) => Gid::from_raw(parse_id("SUDO_GID", &gid)?),
            None => user.gid,
        };
        let name = CString::new(user.name.as_bytes()).with_context(not_a_user)?;
        let groups = unistd::getgrouplist(&name, gid)
            .with_context(|| format!("reading the groups of {} (getgrouplist)", user.name))?;
        Ok(Some(RunAs {
            name: user.name,
            uid: user.uid,
            gid,
            groups,
            home: user.dir,
        }))
    }
}

fn parse_id(variable: &str, value: &OsStr) -> Result<u32> {
    match value.to_str().and_then(|v| v.parse().ok()) {
        Some(id) => Ok(id),
        None => bail!(
            "{variable}={} is not a number: unset it, or pass --as-root to run the command as root",
            value.to_string_lossy()
        ),
    }
}
