//! Which kernel function does unlink on this kernel: `do_unlinkat`, or
//! `filename_unlinkat` since Linux 7.0 renamed it, or what `--function` says.

use std::fmt;
use std::path::Path;

use anyhow::{bail, Result};
use libbpf_rs::btf::types::Func;
use libbpf_rs::btf::Btf;

// ANCHOR: functions
/// Newest name last; both take `(int dfd, struct filename *name)` and return int
/// (long in older kernels such as 5.10: the lessons read the low 32 bits either way).
pub const UNLINK_FUNCTIONS: [&str; 2] = ["do_unlinkat", "filename_unlinkat"];
// ANCHOR_END: functions

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub function: String,
    pub found_in: FoundIn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundIn {
    /// The kernel's type information, /sys/kernel/btf/vmlinux: what fentry needs.
    Btf,
    /// /proc/kallsyms: enough for a kprobe.
    Kallsyms,
    /// `--function NAME`, taken as given.
    CommandLine,
}

impl fmt::Display for FoundIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FoundIn::Btf => "found in kernel BTF",
            FoundIn::Kallsyms => "found in /proc/kallsyms",
            FoundIn::CommandLine => "given with --function",
        })
    }
}

// ANCHOR: resolve
/// Pick the function to attach to, reading the system files under `root` (normally `/`).
pub fn resolve(requested: Option<&str>, root: &Path) -> Result<Target> {
    if let Some(function) = requested {
        return Ok(Target {
            function: function.to_string(),
            found_in: FoundIn::CommandLine,
        });
    }
    if let Some(function) = find_in_btf(root) {
        return Ok(Target {
            function,
            found_in: FoundIn::Btf,
        });
    }
    if let Some(function) = find_in_kallsyms(root) {
        return Ok(Target {
            function,
            found_in: FoundIn::Kallsyms,
        });
    }
    bail!(
        "neither do_unlinkat nor filename_unlinkat is in this kernel's BTF or /proc/kallsyms: \
         run `sudo unlink-doctor` to see why, or name the function with --function NAME"
    )
}
// ANCHOR_END: resolve

/// The unlink function named in the kernel's BTF, if the kernel has BTF.
pub fn find_in_btf(root: &Path) -> Option<String> {
    let btf = Btf::from_path(root.join("sys/kernel/btf/vmlinux")).ok()?;
    UNLINK_FUNCTIONS
        .iter()
        .find(|name| btf.type_by_name::<Func<'_>>(name).is_some())
        .map(|name| name.to_string())
}

/// The unlink function in /proc/kallsyms, with any compiler suffix such as `.isra.0`.
pub fn find_in_kallsyms(root: &Path) -> Option<String> {
    let kallsyms = std::fs::read(root.join("proc/kallsyms")).ok()?;
    let text = String::from_utf8_lossy(&kallsyms);
    kallsyms_unlink_function(&text)
}

fn kallsyms_unlink_function(kallsyms: &str) -> Option<String> {
    let symbols: Vec<&str> = kallsyms
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let kind = fields.nth(1)?;
            let name = fields.next()?;
            matches!(kind, "T" | "t").then_some(name)
        })
        .collect();
    UNLINK_FUNCTIONS.iter().find_map(|wanted| {
        symbols
            .iter()
            .find(|name| *name == wanted)
            .or_else(|| {
                symbols.iter().find(|name| {
                    name.strip_prefix(wanted)
                        .is_some_and(|s| s.starts_with('.'))
                })
            })
            .map(|name| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kallsyms_prefers_exact_names_and_old_before_new() {
        let old = "ffffffff81300000 T do_unlinkat\nffffffff81300100 T vfs_unlink\n";
        assert_eq!(
            kallsyms_unlink_function(old).as_deref(),
            Some("do_unlinkat")
        );
        let new = "ffffffff81300000 T filename_unlinkat\n";
        assert_eq!(
            kallsyms_unlink_function(new).as_deref(),
            Some("filename_unlinkat")
        );
        let suffixed = "ffffffff81300000 t do_unlinkat.isra.0\n";
        assert_eq!(
            kallsyms_unlink_function(suffixed).as_deref(),
            Some("do_unlinkat.isra.0")
        );
        let neither = "ffffffff81300000 T do_unlinkat_extra\n0000 D do_unlinkat\n";
        assert_eq!(kallsyms_unlink_function(neither), None);
        assert_eq!(kallsyms_unlink_function(""), None);
    }

    #[test]
    fn command_line_wins_and_missing_files_give_one_clear_error() {
        let empty = std::env::temp_dir().join("unlink-common-no-such-root");
        let given = resolve(Some("my_unlink"), &empty).unwrap();
        assert_eq!(
            given,
            Target {
                function: "my_unlink".into(),
                found_in: FoundIn::CommandLine
            }
        );
        let err = resolve(None, &empty).unwrap_err().to_string();
        assert!(err.contains("--function NAME"), "{err}");
    }
}
