//! The unlink function in the kernel's BTF, and its prototype in C.

use libbpf_rs::btf::types::{Func, FuncProto};
use std::io::Write as _;

use libbpf_rs::btf::{Btf, BtfKind, BtfType};
use rustix::fs::MemfdFlags;

/// What the lessons' programs are written for: `(int dfd, struct filename *name)`.
pub const EXPECTED_PROTOTYPE: &str = "int NAME(int dfd, struct filename *name)";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    /// C spelling, e.g. `int do_unlinkat(int dfd, struct filename *name)`.
    pub prototype: String,
    /// Why the prototype differs from [`EXPECTED_PROTOTYPE`], if it does.
    pub mismatch: Option<String>,
}

/// Parse BTF from bytes already read (and capped) under the system root. libbpf parses
/// only files: give it an anonymous in-memory one, so it never opens a path in a snapshot.
pub fn parse(bytes: &[u8]) -> Result<Btf<'static>, String> {
    let memfd = rustix::fs::memfd_create("unlink-doctor-btf", MemfdFlags::CLOEXEC)
        .map_err(|err| format!("memfd_create: {err}"))?;
    let mut file = std::fs::File::from(memfd);
    file.write_all(bytes)
        .map_err(|err| format!("copying the BTF to memory: {err}"))?;
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
    Btf::from_path(path).map_err(|err| format!("{err:#}"))
}

/// The function `name` in `btf`, with its prototype.
pub fn function(btf: &Btf<'_>, name: &str) -> Option<Function> {
    let func = btf.type_by_name::<Func<'_>>(name)?;
    let proto = FuncProto::try_from(func.next_type()?).ok()?;
    let ret = proto
        .next_type()
        .map(|t| c_type(&t, 0))
        .unwrap_or_else(|| "void".to_string());
    let params: Vec<(String, String)> = proto
        .iter()
        .map(|param| {
            let ty = btf
                .type_by_id::<BtfType<'_>>(param.ty)
                .map(|t| c_type(&t, 0))
                .unwrap_or_else(|| "?".into());
            let name = param
                .name
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (ty, name)
        })
        .collect();
    let args: Vec<String> = params
        .iter()
        .map(|(ty, name)| match (ty.ends_with('*'), name.is_empty()) {
            (_, true) => ty.clone(),
            (true, false) => format!("{ty}{name}"),
            (false, false) => format!("{ty} {name}"),
        })
        .collect();
    let prototype = format!("{ret} {name}({})", args.join(", "));
    let types: Vec<&str> = params.iter().map(|(ty, _)| ty.as_str()).collect();
    let mismatch = match (ret.as_str(), types.as_slice()) {
        ("int" | "long" | "long int", ["int", "struct filename *"]) => None,
        (_, ["int", "struct filename *"]) => {
            Some(format!("returns {ret}, the lessons read an int"))
        }
        _ => Some(format!(
            "the lessons expect {}",
            EXPECTED_PROTOTYPE.replace("NAME", name)
        )),
    };
    Some(Function {
        name: name.to_string(),
        prototype,
        mismatch,
    })
}

/// A type's C spelling, following modifiers and pointers (not deeper than a few levels).
fn c_type(ty: &BtfType<'_>, depth: usize) -> String {
    let name = || {
        ty.name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let next = |depth| {
        ty.next_type()
            .map(|t| c_type(&t, depth))
            .unwrap_or_else(|| "void".into())
    };
    if depth > 8 {
        return "...".into();
    }
    match ty.kind() {
        BtfKind::Void => "void".into(),
        BtfKind::Int | BtfKind::Float | BtfKind::Typedef => name(),
        BtfKind::Struct => format!("struct {}", name()),
        BtfKind::Union => format!("union {}", name()),
        BtfKind::Enum | BtfKind::Enum64 => format!("enum {}", name()),
        BtfKind::Fwd => format!("struct {}", name()),
        BtfKind::Ptr => {
            let pointee = next(depth + 1);
            if pointee.ends_with('*') {
                format!("{pointee}*")
            } else {
                format!("{pointee} *")
            }
        }
        BtfKind::Const => format!("const {}", next(depth + 1)),
        BtfKind::Volatile => format!("volatile {}", next(depth + 1)),
        BtfKind::Restrict | BtfKind::TypeTag | BtfKind::DeclTag => next(depth + 1),
        _ => name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Btf<'static> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
        Btf::from_path(format!("{path}{name}/sys/kernel/btf/vmlinux")).unwrap()
    }

    #[test]
    fn finds_both_names_and_their_prototypes() {
        let old = function(&fixture("debian-6.1-amd64"), "do_unlinkat").unwrap();
        assert_eq!(
            old.prototype,
            "int do_unlinkat(int dfd, struct filename *name)"
        );
        assert_eq!(old.mismatch, None);
        let new = fixture("debian-7.2-amd64");
        assert!(function(&new, "do_unlinkat").is_none());
        assert_eq!(function(&new, "filename_unlinkat").unwrap().mismatch, None);
    }
}
