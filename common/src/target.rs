//! Which kernel function does unlink on this kernel: `do_unlinkat`, or
//! `filename_unlinkat` since Linux 7.0 renamed it, or what `--function` says.

use std::fmt;
use std::path::Path;

use anyhow::{bail, Result};

use crate::kernel_btf::Mapping;

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
    let path = root.join("sys/kernel/btf/vmlinux");
    // Mapped where the file allows it (the lesson's tmpfs copy, or sysfs on
    // Linux 6.16+): no 5 MB copy.
    let mapped = Mapping::of_file(&path).ok();
    let read = match mapped {
        Some(_) => Vec::new(),
        None => std::fs::read(&path).ok()?,
    };
    let btf = mapped.as_ref().map_or(&read[..], Mapping::bytes);
    UNLINK_FUNCTIONS
        .iter()
        .find(|name| btf_has_function(btf, name))
        .map(|name| name.to_string())
}

/// Whether raw BTF holds a function (BTF_KIND_FUNC) called `name`. A walk
/// over the type records, not a full parse: libbpf parses the same 5 MB again
/// at load, and one parse is a noticeable part of start-up under emulation.
fn btf_has_function(btf: &[u8], name: &str) -> bool {
    const BTF_MAGIC: u16 = 0xeb9f;
    const KIND_FUNC: u32 = 12;
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(btf.get(at..at + 4)?.try_into().ok()?))
    };
    let Some((types, strings)) = (|| {
        if u16::from_ne_bytes(btf.get(0..2)?.try_into().ok()?) != BTF_MAGIC {
            return None;
        }
        let header_len = u32_at(4)? as usize;
        let (type_off, type_len) = (u32_at(8)? as usize, u32_at(12)? as usize);
        let (str_off, str_len) = (u32_at(16)? as usize, u32_at(20)? as usize);
        let types = header_len + type_off..header_len + type_off + type_len;
        let strings = btf.get(header_len + str_off..header_len + str_off + str_len)?;
        Some((types, strings))
    })() else {
        return false;
    };
    // Strings are deduplicated: the name is at one offset, or nowhere.
    let mut offset = 0;
    let Some(name_off) = strings.split(|&byte| byte == 0).find_map(|string| {
        let this = offset as u32;
        offset += string.len() + 1;
        (string == name.as_bytes()).then_some(this)
    }) else {
        return false;
    };
    let mut at = types.start;
    while at + 12 <= types.end {
        let (Some(type_name), Some(info)) = (u32_at(at), u32_at(at + 4)) else {
            return false;
        };
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        if kind == KIND_FUNC && type_name == name_off {
            return true;
        }
        // Each kind's fixed-size data after the 12-byte common part.
        at += 12
            + match kind {
                1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
                3 => 12,                      // ARRAY
                4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
                6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
                2 | 7..=12 | 16 | 18 => 0,    // PTR, FWD, modifiers, FUNC, FLOAT, TYPE_TAG
                _ => return false,            // a kind newer than this code
            };
    }
    false
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
    fn btf_walk_agrees_with_libbpf_on_this_kernel() {
        use libbpf_rs::btf::{types::Func, Btf};
        let path = Path::new("/sys/kernel/btf/vmlinux");
        // Fails rather than skips without BTF: nothing else checks the walk on real data.
        let raw = std::fs::read(path)
            .expect("this test needs the kernel's BTF at /sys/kernel/btf/vmlinux");
        let parsed = Btf::from_path(path).expect("libbpf parses the kernel's BTF");
        for name in [
            "do_unlinkat",
            "filename_unlinkat",
            "vfs_unlink",
            "task_struct",
            "no_such_fn",
        ] {
            assert_eq!(
                btf_has_function(&raw, name),
                parsed.type_by_name::<Func<'_>>(name).is_some(),
                "{name}"
            );
        }
    }

    #[test]
    fn btf_walk_finds_only_functions_and_rejects_garbage() {
        // Header, then types: INT "int", FUNC_PROTO (1 param), FUNC "do_unlinkat", STRUCT "filename_unlinkat".
        let strings = b"\0int\0do_unlinkat\0filename_unlinkat\0";
        let mut types = Vec::new();
        for word in [
            1u32,
            1 << 24,
            4,
            0x20,
            0,
            13 << 24 | 1,
            1,
            0,
            1,
            5,
            12 << 24,
            2,
            17,
            4 << 24,
            0,
        ] {
            types.extend_from_slice(&word.to_ne_bytes());
        }
        let mut btf = Vec::new();
        btf.extend_from_slice(&0xeb9fu16.to_ne_bytes());
        btf.extend_from_slice(&[1, 0]);
        for word in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            btf.extend_from_slice(&word.to_ne_bytes());
        }
        btf.extend_from_slice(&types);
        btf.extend_from_slice(strings);
        assert!(btf_has_function(&btf, "do_unlinkat"));
        assert!(
            !btf_has_function(&btf, "filename_unlinkat"),
            "a struct, not a function"
        );
        assert!(!btf_has_function(&btf, "int"));
        assert!(!btf_has_function(&btf[..30], "do_unlinkat"), "cut short");
        assert!(!btf_has_function(b"not btf at all", "do_unlinkat"));
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
