//! Bad input never panics: fixture roots with corrupt, truncated, empty, huge,
//! unreadable and binary files, and odd kernel version strings.

use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;
use unlink_common::failures::parse_kernel_version;

mod support;
use support::{bounded_doctor, item};

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A scratch copy of a fixture, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn of(fixture: &str, tag: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("unlink-doctor-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(fixture),
            &dir,
        );
        Scratch(dir)
    }

    fn write(&self, path: &str, bytes: &[u8]) {
        let path = self.0.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// Run the doctor on it: it must answer with JSON and exit 0 or 1, never panic.
    fn doctor(&self) -> serde_json::Value {
        let output = Command::new(env!("CARGO_BIN_EXE_unlink-doctor"))
            .args(["--root", self.0.to_str().unwrap(), "--json"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            matches!(output.status.code(), Some(0 | 1)),
            "exit {:?}: {stderr}",
            output.status.code()
        );
        assert!(stderr.is_empty(), "{stderr}");
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn garbage(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7919 % 251) as u8).collect()
}

#[test]
fn corrupt_config_gz_falls_back_or_says_so() {
    let root = Scratch::of("this-machine", "gz");
    let gz = std::fs::read(root.0.join("proc/config.gz")).unwrap();
    root.write("proc/config.gz", &gz[..gz.len() / 2]);
    let json = root.doctor();
    let text = json.to_string();
    assert!(text.contains("unusable: corrupt gzip data"), "{text}");
    assert_eq!(json["verdicts"]["lesson-02"], "will_fail"); // the kprobe PMU is still missing
    root.write("proc/config.gz", &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    root.doctor();
}

#[test]
fn binary_garbage_everywhere() {
    let root = Scratch::of("debian-6.1-amd64", "garbage");
    for path in [
        "proc/sys/kernel/osrelease",
        "proc/sys/kernel/arch",
        "etc/os-release",
        "boot/config-6.1.0-50-amd64",
        "sys/kernel/btf/vmlinux",
        "proc/kallsyms",
        "proc/self/status",
        "proc/self/uid_map",
        "proc/self/limits",
        "proc/self/mountinfo",
        "proc/cpuinfo",
        "sys/kernel/tracing/available_filter_functions",
        "sys/kernel/debug/kprobes/blacklist",
        "sys/kernel/security/lockdown",
        "unlink-doctor-errors",
    ] {
        root.write(path, &garbage(3000));
    }
    let json = root.doctor();
    assert_ne!(json["verdicts"]["lesson-02"], "ready");
}

#[test]
fn empty_files_everywhere() {
    let root = Scratch::of("debian-6.12-amd64", "empty");
    for path in [
        "proc/sys/kernel/osrelease",
        "proc/sys/kernel/arch",
        "boot/config-6.12.107+deb13-amd64",
        "sys/kernel/btf/vmlinux",
        "proc/kallsyms",
        "proc/self/status",
        "proc/self/mountinfo",
    ] {
        root.write(path, b"");
    }
    let json = root.doctor();
    assert_eq!(json["verdicts"]["lesson-03"], "will_fail"); // an empty vmlinux is no BTF
}

#[test]
fn unreadable_and_misshapen_files() {
    let root = Scratch::of("debian-6.1-amd64", "unreadable");
    root.write(
        "unlink-doctor-errors",
        b"/proc/kallsyms EACCES\n/sys/kernel/btf/vmlinux EPERM\n/boot/config-6.1.0-50-amd64 EIO\n/proc/self/status EPERM\n",
    );
    // A directory where a file should be.
    std::fs::remove_file(root.0.join("etc/os-release")).unwrap();
    std::fs::create_dir_all(root.0.join("etc/os-release")).unwrap();
    let json = root.doctor();
    assert_eq!(json["verdicts"]["lesson-02"], "will_fail");
}

#[test]
fn huge_files_are_refused_not_swallowed() {
    let root = Scratch::of("debian-6.1-amd64", "huge");
    let file = std::fs::File::create(root.0.join("proc/kallsyms")).unwrap();
    file.set_len(200 << 20).unwrap(); // sparse: 200 MiB of zeros
    let json = root.doctor();
    assert_eq!(
        item(&json, "tracing.kallsyms")["value"],
        "unreadable: bigger than 65536 KiB, more than any real one: refused"
    );
}

/// The doctor on a hostile root: it answers with JSON within its time and memory.
fn hostile(root: &Path) -> serde_json::Value {
    let (code, stdout, stderr) = bounded_doctor(&["--root", root.to_str().unwrap(), "--json"]);
    assert!(matches!(code, Some(0 | 1)), "exit {code:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"))
}

#[test]
fn symlinks_to_dev_zero_are_not_read() {
    // Once this grew the doctor to 24 GB until the kernel killed it.
    let root = Scratch::of("debian-6.1-amd64", "zero");
    for path in [
        "unlink-doctor-errors",
        "proc/kallsyms",
        "proc/sys/kernel/osrelease",
    ] {
        let _ = std::fs::remove_file(root.0.join(path));
        std::os::unix::fs::symlink("/dev/zero", root.0.join(path)).unwrap();
    }
    let json = hostile(&root.0);
    // Resolved inside the root, /dev/zero is a file the snapshot does not have.
    assert_eq!(
        item(&json, "tracing.kallsyms")["value"],
        "unreadable: missing"
    );
    assert_eq!(
        item(&json, "system.kernel")["value"],
        "unknown: /proc/sys/kernel/osrelease unreadable: missing"
    );
}

#[test]
fn a_device_in_the_root_is_refused() {
    let root = Scratch::of("debian-6.1-amd64", "device");
    std::fs::create_dir_all(root.0.join("dev")).unwrap();
    let made = rustix::fs::mknodat(
        rustix::fs::CWD,
        root.0.join("dev/zero"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 5),
    );
    if made == Err(rustix::io::Errno::PERM) {
        // Only CAP_MKNOD makes a device node, so only such a process can plant one in a snapshot.
        const CAP_MKNOD: u32 = 27;
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let caps = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .unwrap();
        assert_eq!(caps & (1 << CAP_MKNOD), 0, "EPERM despite CAP_MKNOD");
        return;
    }
    made.unwrap();
    std::fs::remove_file(root.0.join("proc/kallsyms")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", root.0.join("proc/kallsyms")).unwrap();
    let json = hostile(&root.0);
    assert_eq!(
        item(&json, "tracing.kallsyms")["value"],
        "unreadable: not a regular file but a character device: refused"
    );
}

#[test]
fn a_fifo_gets_a_finding_not_a_hang() {
    // Once `mkfifo R/proc/kallsyms` blocked the doctor forever.
    let root = Scratch::of("debian-6.1-amd64", "fifo");
    for path in ["proc/kallsyms", "etc/os-release"] {
        std::fs::remove_file(root.0.join(path)).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.0.join(path),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }
    let json = hostile(&root.0);
    assert_eq!(
        item(&json, "tracing.kallsyms")["value"],
        "unreadable: not a regular file but a FIFO: refused"
    );
    let (code, stdout, stderr) = bounded_doctor(&[
        "--root",
        root.0.to_str().unwrap(),
        "explain",
        "lesson-02: os error 2",
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
}

#[test]
fn a_huge_osrelease_is_refused_at_once() {
    // Once a 1 GB osrelease took 58 s and 8 GB.
    let root = Scratch::of("debian-6.1-amd64", "osrelease");
    let file = std::fs::File::create(root.0.join("proc/sys/kernel/osrelease")).unwrap();
    file.set_len(1 << 30).unwrap();
    let json = hostile(&root.0);
    assert_eq!(
        item(&json, "system.kernel")["value"],
        "unknown: /proc/sys/kernel/osrelease unreadable: bigger than 64 KiB, more than any real one: refused"
    );
}

#[test]
fn mount_points_and_symlinks_resolve_inside_the_root() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/debian-6.1-amd64"),
        &root,
    );
    let outside = base.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("tracing_on"), "OUTSIDE\n").unwrap();
    std::fs::write(outside.join("os-release"), "PRETTY_NAME=OUTSIDE\n").unwrap();
    // Once a mount point `/../../..` read files outside the root.
    std::fs::write(
        root.join("proc/self/mountinfo"),
        "45 23 0:12 / /../outside rw - tracefs tracefs rw\n",
    )
    .unwrap();
    let os_release = root.join("etc/os-release");
    std::fs::remove_file(&os_release).unwrap();
    std::os::unix::fs::symlink(outside.join("os-release"), &os_release).unwrap();
    let json = hostile(&root);
    assert!(!json.to_string().contains("OUTSIDE"), "{json}");
    assert_eq!(item(&json, "tracing.tracing_on")["status"], "skipped");

    // An absolute symlink means the snapshot's own file, as it did on its machine.
    std::fs::remove_file(&os_release).unwrap();
    std::os::unix::fs::symlink("/usr/lib/os-release", &os_release).unwrap();
    std::fs::create_dir_all(root.join("usr/lib")).unwrap();
    std::fs::write(
        root.join("usr/lib/os-release"),
        "PRETTY_NAME=\"Inside 1\"\n",
    )
    .unwrap();
    let json = hostile(&root);
    assert_eq!(item(&json, "system.distribution")["value"], "Inside 1");
}

#[test]
fn odd_version_strings() {
    for (release, expected) in [
        ("6.18.44-fc-v595", Some((6, 18))),
        ("5.15.0-1034-azure", Some((5, 15))),
        ("7.0.0-rc1+", Some((7, 0))),
        ("4.19.0-27-cloud-amd64", Some((4, 19))),
        ("6.1", Some((6, 1))),
        ("", None),
        ("linux", None),
        ("99999999999.1", None),
    ] {
        assert_eq!(parse_kernel_version(release), expected, "{release:?}");
        let root = Scratch::of("debian-6.1-amd64", "version");
        root.write(
            "proc/sys/kernel/osrelease",
            format!("{release}\n").as_bytes(),
        );
        let json = root.doctor();
        let old = expected.is_some_and(|v| v < (5, 8));
        if old {
            assert_eq!(json["lessons"][0]["failure"], "kernel-too-old", "{release}");
        }
    }
}

proptest! {
    #[test]
    fn kernel_versions_never_panic(release in ".{0,40}") {
        let _ = parse_kernel_version(&release);
    }

    #[test]
    fn kernel_versions_read_major_minor(major in 0u32..100, minor in 0u32..1000, rest in "[-.+a-z0-9]{0,20}") {
        let release = format!("{major}.{minor}{}{rest}", if rest.starts_with(|c: char| c.is_ascii_digit()) { "." } else { "" });
        prop_assert_eq!(parse_kernel_version(&release), Some((major, minor)));
    }
}

#[test]
fn terminal_control_characters_are_escaped() {
    let root = Scratch::of("debian-6.1-amd64", "escapes");
    root.write(
        "etc/os-release",
        "PRETTY_NAME=\"Evil\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31m\u{202e}\"\n".as_bytes(),
    );
    root.write("proc/sys/kernel/version", b"#1 SMP \x1b[31mred\n");
    std::fs::create_dir_all(root.0.join("sys/kernel/livepatch/\u{1b}[8mhidden")).unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--root", root.0.to_str().unwrap()];
        all.extend(args);
        let (code, stdout, stderr) = bounded_doctor(&all);
        assert!(matches!(code, Some(0 | 1)), "{stderr}");
        stdout
    };
    for (args, escaped) in [
        (
            &["--color", "never"][..],
            "Evil\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u{202e}",
        ),
        (&["--report"][..], "Evil\\x1b]0;owned\\x07"),
        (
            &["--json"][..],
            "Evil\\u001b]0;owned\\u0007\\u001b[2J\\u009b31m\\u202e",
        ),
    ] {
        let out = run(args);
        assert!(
            !out.contains(['\u{1b}', '\u{7}', '\u{9b}', '\u{202e}']),
            "{args:?}: raw control characters in {out}"
        );
        assert!(out.contains(escaped), "{args:?}: {out}");
    }
    assert!(run(&["--color", "never"]).contains("\\x1b[8mhidden"));
    assert!(run(&["--report"]).contains("#1 SMP \\x1b[31mred"));
}

#[test]
fn a_config_the_running_kernel_contradicts_is_called_stale() {
    let root = Scratch::of("debian-6.12-amd64", "stale");
    let path = "boot/config-6.12.107+deb13-amd64";
    let config = std::fs::read_to_string(root.0.join(path)).unwrap();
    let config = config
        .replace("CONFIG_KPROBES=y", "# CONFIG_KPROBES is not set")
        .replace(
            "CONFIG_DEBUG_INFO_BTF=y",
            "# CONFIG_DEBUG_INFO_BTF is not set",
        );
    root.write(path, config.as_bytes());
    let json = root.doctor();
    // The kprobe PMU and BTF exist: the runtime evidence decides, and no ✘ stands beside it.
    assert_eq!(json["verdicts"]["lesson-02"], "ready", "{json}");
    assert_eq!(json["verdicts"]["lesson-03"], "ready", "{json}");
    let failed: Vec<&serde_json::Value> = json["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["items"].as_array().unwrap())
        .filter(|i| i["status"] == "fail")
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(item(&json, "config.kprobes")["status"], "warn");
    assert_eq!(item(&json, "config.debug_info_btf")["status"], "warn");
    let stale = item(&json, "config.stale");
    assert_eq!(stale["status"], "warn");
    assert!(
        stale["value"]
            .as_str()
            .unwrap()
            .contains("(CONFIG_KPROBES, CONFIG_DEBUG_INFO_BTF): stale, or another kernel's"),
        "{stale}"
    );

    // Without the kernel's evidence, the config still decides.
    std::fs::remove_dir_all(root.0.join("sys/bus/event_source/devices/kprobe")).unwrap();
    std::fs::remove_file(root.0.join("sys/kernel/tracing/kprobe_events")).unwrap();
    let json = root.doctor();
    assert_eq!(item(&json, "config.kprobes")["status"], "fail");
    assert_eq!(json["verdicts"]["lesson-02"], "will_fail");
}
