//! errno numbers to their names, including the kernel-internal ones (512..) that
//! leak to user space through BPF, like 524 ENOTSUPP.

use std::fmt;

/// The symbolic name of `errno` on Linux (`2` -> `ENOENT`), if it has one.
pub fn name(errno: i32) -> Option<&'static str> {
    let errno = usize::try_from(errno).ok()?;
    match errno {
        1..=133 => Some(USER_SPACE[errno - 1]).filter(|name| !name.is_empty()),
        512..=531 => Some(KERNEL_INTERNAL[errno - 512]).filter(|name| !name.is_empty()),
        _ => None,
    }
}

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

/// Numbers 1..=133; "" marks the two Linux leaves unused (41 and 58 are aliases elsewhere).
const USER_SPACE: [&str; 133] = [
    "EPERM",
    "ENOENT",
    "ESRCH",
    "EINTR",
    "EIO",
    "ENXIO",
    "E2BIG",
    "ENOEXEC",
    "EBADF",
    "ECHILD",
    "EAGAIN",
    "ENOMEM",
    "EACCES",
    "EFAULT",
    "ENOTBLK",
    "EBUSY",
    "EEXIST",
    "EXDEV",
    "ENODEV",
    "ENOTDIR",
    "EISDIR",
    "EINVAL",
    "ENFILE",
    "EMFILE",
    "ENOTTY",
    "ETXTBSY",
    "EFBIG",
    "ENOSPC",
    "ESPIPE",
    "EROFS",
    "EMLINK",
    "EPIPE",
    "EDOM",
    "ERANGE",
    "EDEADLK",
    "ENAMETOOLONG",
    "ENOLCK",
    "ENOSYS",
    "ENOTEMPTY",
    "ELOOP",
    "",
    "ENOMSG",
    "EIDRM",
    "ECHRNG",
    "EL2NSYNC",
    "EL3HLT",
    "EL3RST",
    "ELNRNG",
    "EUNATCH",
    "ENOCSI",
    "EL2HLT",
    "EBADE",
    "EBADR",
    "EXFULL",
    "ENOANO",
    "EBADRQC",
    "EBADSLT",
    "",
    "EBFONT",
    "ENOSTR",
    "ENODATA",
    "ETIME",
    "ENOSR",
    "ENONET",
    "ENOPKG",
    "EREMOTE",
    "ENOLINK",
    "EADV",
    "ESRMNT",
    "ECOMM",
    "EPROTO",
    "EMULTIHOP",
    "EDOTDOT",
    "EBADMSG",
    "EOVERFLOW",
    "ENOTUNIQ",
    "EBADFD",
    "EREMCHG",
    "ELIBACC",
    "ELIBBAD",
    "ELIBSCN",
    "ELIBMAX",
    "ELIBEXEC",
    "EILSEQ",
    "ERESTART",
    "ESTRPIPE",
    "EUSERS",
    "ENOTSOCK",
    "EDESTADDRREQ",
    "EMSGSIZE",
    "EPROTOTYPE",
    "ENOPROTOOPT",
    "EPROTONOSUPPORT",
    "ESOCKTNOSUPPORT",
    "EOPNOTSUPP",
    "EPFNOSUPPORT",
    "EAFNOSUPPORT",
    "EADDRINUSE",
    "EADDRNOTAVAIL",
    "ENETDOWN",
    "ENETUNREACH",
    "ENETRESET",
    "ECONNABORTED",
    "ECONNRESET",
    "ENOBUFS",
    "EISCONN",
    "ENOTCONN",
    "ESHUTDOWN",
    "ETOOMANYREFS",
    "ETIMEDOUT",
    "ECONNREFUSED",
    "EHOSTDOWN",
    "EHOSTUNREACH",
    "EALREADY",
    "EINPROGRESS",
    "ESTALE",
    "EUCLEAN",
    "ENOTNAM",
    "ENAVAIL",
    "EISNAM",
    "EREMOTEIO",
    "EDQUOT",
    "ENOMEDIUM",
    "EMEDIUMTYPE",
    "ECANCELED",
    "ENOKEY",
    "EKEYEXPIRED",
    "EKEYREVOKED",
    "EKEYREJECTED",
    "EOWNERDEAD",
    "ENOTRECOVERABLE",
    "ERFKILL",
    "EHWPOISON",
];

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
