//! errno numbers to their names, including the kernel-internal ones (512..) that
//! leak to user space through BPF, like 524 ENOTSUPP.

use std::fmt;
use std::sync::LazyLock;

use nix::errno::Errno;

/// The symbolic name of `errno` on Linux (`2` -> `ENOENT`), if it has one.
pub fn name(errno: i32) -> Option<&'static str> {
    let errno = usize::try_from(errno).ok()?;
    match errno {
        512..=531 => Some(KERNEL_INTERNAL[errno - 512]).filter(|name| !name.is_empty()),
        _ => USER_SPACE.get(errno)?.as_deref(),
    }
}

/// The user-space names by number, from nix (its `Debug` is the name); made once.
static USER_SPACE: LazyLock<Vec<Option<String>>> = LazyLock::new(|| {
    (0..512)
        .map(|n| match Errno::from_raw(n) {
            Errno::UnknownErrno => None,
            known => Some(format!("{known:?}")),
        })
        .collect()
});

/// A return value for people: `-2 ENOENT` for a negative one, `0` for success (not padded).
pub struct Ret(pub i32);

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only negative values have a name: name() knows no errno 0 or below.
        match name(self.0.saturating_neg()) {
            Some(name) => write!(f, "{} {name}", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// The errno number for a name, accepting `ENOENT` and `-ENOENT`.
pub fn from_name(name: &str) -> Option<i32> {
    let name = name.trim_start_matches('-');
    (1..=531).find(|&n| self::name(n) == Some(name))
}

/// include/linux/errno.h: never meant for user space, yet BPF attach returns them.
/// Numbers 512..=531 (520 is unused).
const KERNEL_INTERNAL: [&str; 20] = [
    "ERESTARTSYS",
    "ERESTARTNOINTR",
    "ERESTARTNOHAND",
    "ENOIOCTLCMD",
    "ERESTART_RESTARTBLOCK",
    "EPROBE_DEFER",
    "EOPENSTALE",
    "ENOPARAM",
    "",
    "EBADHANDLE",
    "ENOTSYNC",
    "EBADCOOKIE",
    "ENOTSUPP",
    "ETOOSMALL",
    "ESERVERFAULT",
    "EBADTYPE",
    "EJUKEBOX",
    "EIOCBQUEUED",
    "ERECALLCONFLICT",
    "ENOGRACE",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_linux_numbers() {
        assert_eq!(name(1), Some("EPERM"));
        assert_eq!(name(2), Some("ENOENT"));
        assert_eq!(name(3), Some("ESRCH"));
        assert_eq!(name(7), Some("E2BIG"));
        assert_eq!(name(16), Some("EBUSY"));
        assert_eq!(name(22), Some("EINVAL"));
        assert_eq!(name(38), Some("ENOSYS"));
        assert_eq!(name(95), Some("EOPNOTSUPP"));
        assert_eq!(name(133), Some("EHWPOISON"));
        assert_eq!(name(524), Some("ENOTSUPP"));
        assert_eq!(name(0), None);
        assert_eq!(name(-2), None);
        assert_eq!(name(200), None);
        assert_eq!(name(41), None);
        assert_eq!(name(520), None);
        assert_eq!(name(531), Some("ENOGRACE"));
        // Every number Linux names, each name back to its own number.
        for n in (1..=133)
            .chain(512..=531)
            .filter(|n| ![41, 58, 520].contains(n))
        {
            let found = name(n).unwrap_or_else(|| panic!("no name for {n}"));
            assert_eq!(from_name(found), Some(n), "{found}");
        }
    }

    #[test]
    fn describes_return_values() {
        assert_eq!(Ret(0).to_string(), "0");
        assert_eq!(Ret(5).to_string(), "5");
        assert_eq!(Ret(-2).to_string(), "-2 ENOENT");
        assert_eq!(Ret(-21).to_string(), "-21 EISDIR");
        assert_eq!(Ret(-1000).to_string(), "-1000");
        assert_eq!(Ret(i32::MIN).to_string(), i32::MIN.to_string());
    }

    #[test]
    fn parses_names_back() {
        assert_eq!(from_name("ENOTSUPP"), Some(524));
        assert_eq!(from_name("-ENOENT"), Some(2));
        assert_eq!(from_name("ENOPE"), None);
    }
}
