//! `cargo xtask book install`: the pinned mdBook, built once into
//! target/tools with `cargo install --locked`, and the Debian packages the
//! book needs (python3 for its preprocessor; Chromium and Noto CJK fonts for
//! the browser check).

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;

use crate::deps::{self, Package};
use crate::test::cargo;
use crate::{cmd, workspace};

/// 0.5 (not 0.4): heading attributes, `{{ resource }}`-hashed assets and the
/// `items` book format that preprocessor/lang.py reads. Needs rustc 1.88+.
pub const MDBOOK_VERSION: &str = "0.5.4";

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

/// Everything: mdBook, python3, Chromium and the fonts.
pub fn run() -> Result<()> {
    deps::ensure(&[BUILD, BROWSER])?;
    mdbook()?;
    Ok(())
}
