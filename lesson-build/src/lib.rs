//! The lessons' build scripts: compile `src/bpf/NAME.bpf.c` with clang and
//! generate the Rust skeleton `OUT_DIR/NAME.skel.rs` with libbpf-cargo.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

// ANCHOR: build_skeleton
/// Build the skeleton for `src/bpf/{name}.bpf.c` of the calling package.
pub fn build_skeleton(name: &str) {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let source = manifest_dir.join("src/bpf").join(format!("{name}.bpf.c"));
    let shared_headers = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../common/bpf");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"))
        .join(format!("{name}.skel.rs"));

    if !clang_found() {
        return fail("clang not found: the BPF programs are compiled with clang; install it with `sudo apt-get install clang` (or run `cargo xtask deps`)");
    }
    let result = libbpf_cargo::SkeletonBuilder::new()
        .source(&source)
        .clang_args([
            std::ffi::OsString::from("-I"),
            shared_headers.clone().into_os_string(),
        ])
        .build_and_generate(&out);
    if let Err(err) = result {
        // libbpf-cargo's error already holds clang's diagnostics.
        return fail(&format!("compiling {} failed: {err:#}", source.display()));
    }
    if let Err(err) = mark_generated(&out) {
        return fail(&format!("{}: {err}", out.display()));
    }
    println!("cargo:rerun-if-changed={}", source.display());
    println!("cargo:rerun-if-changed={}", shared_headers.display());
}
// ANCHOR_END: build_skeleton

/// The project lints with clippy's undocumented_unsafe_blocks, and the lessons
/// `include!` the skeleton, whose unsafe blocks are libbpf-cargo's: exempt its
/// module, next to the lint levels libbpf-cargo already sets there.
fn mark_generated(skeleton: &Path) -> std::io::Result<()> {
    let mut text = std::fs::read_to_string(skeleton)?;
    let Some(at) = text.find("\nmod imp {") else {
        return Err(std::io::Error::other(
            "no `mod imp {` in libbpf-cargo's skeleton: has its layout changed?",
        ));
    };
    text.insert_str(at + 1, "#[allow(clippy::undocumented_unsafe_blocks)]\n");
    std::fs::write(skeleton, text)
}

fn clang_found() -> bool {
    Command::new("clang")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Cargo prints this as one `error:` line and fails the build, without the
/// "failed to run custom build command" dump a non-zero exit would add.
fn fail(message: &str) {
    println!("cargo::error={message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_skeleton_module_is_exempt_and_a_changed_layout_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let skeleton = dir.path().join("x.skel.rs");
        std::fs::write(
            &skeleton,
            "pub use self::imp::*;\n#[allow(dead_code)]\nmod imp {\n}\n",
        )
        .unwrap();
        mark_generated(&skeleton).unwrap();
        assert_eq!(
            std::fs::read_to_string(&skeleton).unwrap(),
            "pub use self::imp::*;\n#[allow(dead_code)]\n\
             #[allow(clippy::undocumented_unsafe_blocks)]\nmod imp {\n}\n"
        );
        std::fs::write(&skeleton, "pub mod other {}\n").unwrap();
        let err = mark_generated(&skeleton).unwrap_err();
        assert!(err.to_string().contains("no `mod imp {`"), "{err}");
    }
}
