//! /proc/PID/mountinfo: where tracefs, debugfs and bpffs are mounted.
//!
//! Hand-written rather than procfs-core's `MountInfos` (0.18): that one fails the whole
//! file on one malformed line and leaves `\040`-style escapes in mount points, and a
//! snapshot's mountinfo is untrusted text the doctor must still read what it can from.

/// One mount: where, and which file system type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: String,
    pub fs_type: String,
}

/// The mounts in a mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let mount_point = fields.get(4)?;
            let separator = fields.iter().position(|f| *f == "-")?;
            let fs_type = fields.get(separator + 1)?;
            Some(Mount {
                mount_point: unescape(mount_point),
                fs_type: fs_type.to_string(),
            })
        })
        .collect()
}

/// The mount points of file systems of type `fs_type`.
pub fn mount_points<'a>(mounts: &'a [Mount], fs_type: &str) -> Vec<&'a str> {
    mounts
        .iter()
        .filter(|m| m.fs_type == fs_type)
        .map(|m| m.mount_point.as_str())
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\040`-style octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal.and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_tracefs_and_debugfs() {
        let text = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
                    45 23 0:12 / /sys/kernel/tracing rw,nosuid shared:20 - tracefs tracefs rw\n\
                    46 23 0:7 / /sys/kernel/debug rw - debugfs debugfs rw\n\
                    47 23 0:7 / /mnt/my\\040dir rw - tracefs nodev rw\n\
                    garbage line\n";
        let mounts = parse(text);
        assert_eq!(
            mount_points(&mounts, "tracefs"),
            ["/sys/kernel/tracing", "/mnt/my dir"]
        );
        assert_eq!(mount_points(&mounts, "debugfs"), ["/sys/kernel/debug"]);
        assert!(mount_points(&mounts, "bpf").is_empty());
    }

    proptest! {
        #[test]
        fn never_panics(text in ".{0,300}") {
            let _ = parse(&text);
            let _ = unescape(&text);
        }
    }
}
