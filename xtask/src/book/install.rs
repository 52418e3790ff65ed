//! `cargo xtask book install`: the pinned mdBook, built once into
//! target/tools with `cargo install --locked`, and the Debian packages the
//! book needs (python3 for its preprocessor; Chromium and Noto CJK fonts for
//! the browser check).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::deps::{self, Package};
use crate::test::cargo;
use crate::{cmd, workspace};

/// 0.5 (not 0.4): heading attributes, `{{ resource }}`-hashed assets and the
/// `items` book format that preprocessor/lang.py reads.
pub const MDBOOK_VERSION: &str = "0.5.4";
/// mdBook 0.5.4's rust-version: older compilers fail deep in the build.
const MDBOOK_RUSTC: (u32, u32) = (1, 88);

/// Building and serving: book.toml runs `python3 preprocessor/lang.py`.
pub const BUILD: &[Package] = &[Package {
    name: "python3",
    provides: "/usr/bin/python3",
}];

/// The browser check: headless Chromium, and CJK fonts for it to render Chinese with.
pub const BROWSER: &[Package] = &[
    Package {
        name: "chromium",
        provides: "/usr/bin/chromium",
    },
    Package {
        name: "fonts-noto-cjk",
        provides: "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    },
];

pub fn tools_dir() -> PathBuf {
    workspace::target_dir().join("tools")
}

pub fn mdbook_path() -> PathBuf {
    tools_dir().join("bin/mdbook")
}

/// The pinned mdBook, installed unless target/tools already has that version.
pub fn mdbook() -> Result<PathBuf> {
    let path = mdbook_path();
    let wanted = format!("mdbook v{MDBOOK_VERSION}");
    let installed = Command::new(&path)
        .arg("--version")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    if installed.as_deref() == Some(wanted.as_str()) {
        eprintln!("book: {wanted} is installed ({})", path.display());
        return Ok(path);
    }
    check_rustc()?;
    eprintln!(
        "book: installing {wanted} into {} (built from crates.io, a few minutes, once)",
        tools_dir().display()
    );
    cmd::run(
        cargo()
            .args(["install", "--locked", "--quiet"])
            .arg(format!("mdbook@{MDBOOK_VERSION}"))
            .arg("--root")
            .arg(tools_dir()),
    )?;
    Ok(path)
}

/// Stop before a long build that cannot succeed: a one-line error naming the fix.
fn check_rustc() -> Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .arg("--version")
        .output()
        .context("running rustc --version")?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match rustc_version(&version) {
        Some(found) if found < MDBOOK_RUSTC => {
            let (major, minor) = MDBOOK_RUSTC;
            bail!(
                "mdBook {MDBOOK_VERSION} needs rustc {major}.{minor} or newer, this is {version}: run `rustup update stable`"
            )
        }
        _ => Ok(()),
    }
}

/// `rustc 1.88.0 (6b00bc388 2025-06-23)` to (1, 88).
fn rustc_version(text: &str) -> Option<(u32, u32)> {
    let mut numbers = text.strip_prefix("rustc ")?.split(['.', ' ', '-']);
    Some((numbers.next()?.parse().ok()?, numbers.next()?.parse().ok()?))
}

/// Everything: mdBook, python3, Chromium and the fonts.
pub fn run() -> Result<()> {
    deps::ensure(&[BUILD, BROWSER])?;
    mdbook()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rustc_version() {
        assert_eq!(
            rustc_version("rustc 1.88.0 (6b00bc388 2025-06-23)"),
            Some((1, 88))
        );
        assert_eq!(
            rustc_version("rustc 1.82.0-nightly (abc 2024-08-01)"),
            Some((1, 82))
        );
        assert!(rustc_version("rustc 1.87.1 (x)").unwrap() < MDBOOK_RUSTC);
        assert_eq!(rustc_version("cargo 1.88.0"), None);
    }
}
