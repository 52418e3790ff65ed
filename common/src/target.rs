//! Which kernel function does unlink on this kernel: `do_unlinkat`, or
//! `filename_unlinkat` since Linux 7.0 renamed it, or what `--function` says.

use std::fmt;
use std::path::Path;

use anyhow::{bail, Result};
use libbpf_rs::btf::types::{Func, FuncProto};
use libbpf_rs::btf::{Btf, BtfKind, BtfType};

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
    let btf = kernel_btf(root);
    if let Some(function) = requested {
        if let Some(warning) = btf
            .as_ref()
            .and_then(|btf| prototype_warning(btf, function))
        {
            eprintln!("warning: {warning}");
        }
        return Ok(Target {
            function: function.to_string(),
            found_in: FoundIn::CommandLine,
        });
    }
    if let Some(function) = btf.as_ref().and_then(find_in_btf) {
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

/// The kernel's type information, if it has any (CONFIG_DEBUG_INFO_BTF).
fn kernel_btf(root: &Path) -> Option<Btf<'static>> {
    Btf::from_path(root.join("sys/kernel/btf/vmlinux")).ok()
}

// ANCHOR: find_in_btf
/// The unlink function this kernel's BTF names: libbpf-rs looks it up by name.
pub fn find_in_btf(btf: &Btf<'_>) -> Option<String> {
    UNLINK_FUNCTIONS
        .iter()
        .find(|name| btf.type_by_name::<Func<'_>>(name).is_some())
        .map(|name| name.to_string())
}
// ANCHOR_END: find_in_btf

/// The probes read their arguments as `(int dfd, struct filename *name)`. A
/// function that takes something else (say `vfs_unlink`) attaches fine but
/// gives garbage: say so. `None` when the prototype fits or BTF does not know
/// the function (a kprobe may still attach to it).
pub fn prototype_warning(btf: &Btf<'_>, function: &str) -> Option<String> {
    let func = btf.type_by_name::<Func<'_>>(function)?;
    let proto = FuncProto::try_from(func.next_type()?).ok()?;
    let params: Vec<String> = proto.iter().map(|param| type_text(btf, param.ty)).collect();
    if params.len() >= 2 && params[0] == "int" && params[1] == "struct filename *" {
        return None;
    }
    Some(format!(
        "{function} takes ({}), not (int, struct filename *) like do_unlinkat: \
         the lesson will read its arguments wrongly (names show as <unreadable> or garbage)",
        params.join(", ")
    ))
}

/// A parameter's type as C spells it, enough to compare: `int`, `struct filename *`.
fn type_text(btf: &Btf<'_>, id: libbpf_rs::btf::TypeId) -> String {
    let Some(ty) = btf.type_by_id::<BtfType<'_>>(id) else {
        return "?".into();
    };
    let ty = ty.skip_mods_and_typedefs();
    let name = ty
        .name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    match ty.kind() {
        BtfKind::Ptr => match ty.next_type() {
            Some(target) => match type_text(btf, target.type_id()) {
                pointer if pointer.ends_with('*') => format!("{pointer}*"),
                other => format!("{other} *"),
            },
            None => "void *".into(),
        },
        BtfKind::Struct => format!("struct {name}"),
        BtfKind::Union => format!("union {name}"),
        BtfKind::Enum | BtfKind::Enum64 => format!("enum {name}"),
        _ if name.is_empty() => "?".into(),
        _ => name,
    }
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
    fn btf_finds_the_function_and_flags_a_foreign_prototype_on_this_kernel() {
        // Fails rather than skips without BTF: the warning must be checked on real data.
        let btf = kernel_btf(Path::new("/"))
            .expect("this test needs the kernel's BTF at /sys/kernel/btf/vmlinux");
        let function = find_in_btf(&btf).expect("do_unlinkat or filename_unlinkat in BTF");
        assert_eq!(prototype_warning(&btf, &function), None, "{function}");
        let warning = prototype_warning(&btf, "vfs_unlink").expect("vfs_unlink differs");
        assert!(
            warning.starts_with("vfs_unlink takes (struct ") && warning.contains("struct inode *"),
            "{warning}"
        );
        assert_eq!(prototype_warning(&btf, "no_such_function_here"), None);
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
