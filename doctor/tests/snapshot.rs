//! `unlink-doctor snapshot DIR` runs as root in a directory a user may own: it
//! never writes through a symlink, takes only a new or empty directory of the
//! user's or root's, and copies no secrets.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

mod support;
use support::{bounded, bounded_doctor, doctor, item};

/// A file outside the snapshot that a planted symlink points at.
fn precious(base: &Path) -> std::path::PathBuf {
    let path = base.join("precious");
    std::fs::write(&path, "keep me\n").unwrap();
    path
}

fn refused(dir: &Path, why: &str) {
    let (code, stdout, stderr) = bounded_doctor(&["snapshot", dir.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(why), "{stderr}");
}

#[test]
fn a_directory_with_planted_symlinks_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let target = precious(base.path());
    let dir = base.path().join("snap");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(&target, dir.join("unlink-doctor-errors")).unwrap();
    std::os::unix::fs::symlink(base.path(), dir.join("etc")).unwrap();
    refused(&dir, "not empty");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
    assert!(!base.path().join("os-release").exists());
}

#[test]
fn a_symlink_as_the_directory_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let elsewhere = base.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let dir = base.path().join("snap");
    std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
    refused(&dir, "a symlink or not a directory");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn a_directory_of_another_user_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("snap");
    std::fs::create_dir(&dir).unwrap();
    if !rustix::process::geteuid().is_root() {
        // Only root can give a directory away; a user's own directory is accepted.
        let (code, _, stderr) = bounded_doctor(&["snapshot", dir.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{stderr}");
        return;
    }
    std::os::unix::fs::chown(&dir, Some(4242), Some(4242)).unwrap();
    let mut command = doctor(&["snapshot", dir.to_str().unwrap()]);
    command.env("SUDO_UID", "4243");
    let (code, _, stderr) = bounded(command);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("owned by uid 4242, neither you (uid 4243) nor root"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    // The user who ran sudo may snapshot into their own directory.
    let mut command = doctor(&["snapshot", dir.to_str().unwrap()]);
    command.env("SUDO_UID", "4242");
    let (code, _, stderr) = bounded(command);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn a_snapshot_holds_no_addresses_and_no_wider_modes() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("snap");
    let (code, _, stderr) = bounded_doctor(&["snapshot", dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");

    let kallsyms = std::fs::read_to_string(dir.join("proc/kallsyms")).unwrap();
    assert!(kallsyms.contains("unlink"), "{kallsyms}");
    for line in kallsyms.lines() {
        let kind = line.split_whitespace().next().unwrap();
        assert_eq!(
            kind.len(),
            1,
            "an address in the snapshot's kallsyms: {line}"
        );
    }
    let mut checked = 0;
    let mut stack = vec![dir.clone()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let meta = entry.path().symlink_metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
                continue;
            }
            assert!(meta.is_file(), "{}", entry.path().display());
            let source = Path::new("/").join(entry.path().strip_prefix(&dir).unwrap());
            if let Ok(source) = std::fs::metadata(&source) {
                let wider = meta.permissions().mode() & 0o777 & !source.mode();
                assert_eq!(
                    wider,
                    0,
                    "{} is more open than its source",
                    entry.path().display()
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 10, "only {checked} files compared");

    // The doctor finds the same function in the snapshot as on the machine.
    let json = |args: &[&str]| -> serde_json::Value {
        let (_, stdout, stderr) = bounded_doctor(args);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"))
    };
    let native = json(&["--no-live", "--json"]);
    let snapshot = json(&["--root", dir.to_str().unwrap(), "--json"]);
    assert_eq!(
        item(&snapshot, "tracing.kallsyms"),
        item(&native, "tracing.kallsyms")
    );
}
