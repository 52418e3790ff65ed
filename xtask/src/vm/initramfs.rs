//! The guest's root file system: busybox, an init script, and the command to
//! run with the shared libraries it needs, at the same paths as on the host.
//! An uncompressed newc cpio: the kernel unpacks it faster than gzip under TCG.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cmd::shell_quote;

/// Files of the archive by guest path.
#[derive(Default)]
pub struct Initramfs {
    entries: BTreeMap<PathBuf, Entry>,
}

enum Entry {
    Dir,
    File { data: Vec<u8>, mode: u32 },
}

impl Initramfs {
    pub fn add_file(&mut self, guest: &Path, data: Vec<u8>, mode: u32) {
        for dir in guest
            .ancestors()
            .skip(1)
            .filter(|d| !d.as_os_str().is_empty() && *d != Path::new("/"))
        {
            self.entries.entry(dir.to_path_buf()).or_insert(Entry::Dir);
        }
        self.entries
            .insert(guest.to_path_buf(), Entry::File { data, mode });
    }

    pub fn add_dir(&mut self, guest: &Path) {
        self.entries
            .entry(guest.to_path_buf())
            .or_insert(Entry::Dir);
    }

    /// A host executable (debug info stripped, to keep the guest's boot quick) and its libraries.
    pub fn add_executable(&mut self, host: &Path, guest: &Path) -> Result<()> {
        self.add_file(guest, stripped(host)?, 0o755);
        for library in shared_libraries(host)? {
            let data =
                fs::read(&library).with_context(|| format!("reading {}", library.display()))?;
            self.add_file(&library, data, 0o755);
        }
        Ok(())
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let mut out = Vec::new();
        for (ino, (path, entry)) in self.entries.iter().enumerate() {
            let name = path.strip_prefix("/").unwrap_or(path);
            match entry {
                Entry::Dir => write_entry(&mut out, ino + 1, name, 0o040755, &[]),
                Entry::File { data, mode } => {
                    write_entry(&mut out, ino + 1, name, 0o100000 | mode, data)
                }
            }
        }
        write_entry(&mut out, 0, Path::new("TRAILER!!!"), 0, &[]);
        fs::write(path, out).with_context(|| format!("writing {}", path.display()))
    }
}

fn write_entry(out: &mut Vec<u8>, ino: usize, name: &Path, mode: u32, data: &[u8]) {
    let name = name.as_os_str().as_encoded_bytes();
    let fields = [
        ino as u32,
        mode,
        0,
        0,
        1,
        0,
        data.len() as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    out.extend_from_slice(name);
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn stripped(host: &Path) -> Result<Vec<u8>> {
    static COPIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let copy = std::env::temp_dir().join(format!("xtask-strip-{}-{n}", std::process::id()));
    let status = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&copy)
        .arg(host)
        .status();
    let data = match status {
        Ok(status) if status.success() => fs::read(&copy)?,
        // Not an ELF file (a script), or no strip: ship it as it is.
        _ => fs::read(host).with_context(|| format!("reading {}", host.display()))?,
    };
    let _ = fs::remove_file(&copy);
    Ok(data)
}

/// The libraries `ldd` lists, the dynamic loader included; none for static binaries and scripts.
fn shared_libraries(host: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(host)
        .output()
        .context("running ldd")?;
    Ok(parse_ldd(&String::from_utf8_lossy(&output.stdout)))
}

fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, target)) => target.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// What the guest's /init does: mount the file systems BPF tools expect (not a
/// tmpfs on /tmp: the initramfs root is writable already, and host files may
/// live under /tmp), run
/// the command with stdout on ttyS1 and stderr on ttyS2, report its status on
/// the console, power off.
pub fn init_script(command: &[String], env: &[(String, String)]) -> Result<String> {
    if command.is_empty() {
        bail!("no command to run in the VM");
    }
    let exports: String = env
        .iter()
        .map(|(k, v)| format!("export {k}={}\n", shell_quote(v.as_ref())))
        .collect();
    let argv: Vec<String> = command.iter().map(|a| shell_quote(a.as_ref())).collect();
    Ok(format!(
        r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
stty -F /dev/ttyS1 raw -echo
stty -F /dev/ttyS2 raw -echo
{exports}cd /tmp
{argv} </dev/null >/dev/ttyS1 2>/dev/ttyS2
echo "{STATUS_MARKER}$?" >/dev/ttyS0
poweroff -f
"#,
        argv = argv.join(" ")
    ))
}

/// The console line that carries the command's exit status.
pub const STATUS_MARKER: &str = "XTASK-EXIT-STATUS=";

/// The exit status from the console log, if the guest got that far.
pub fn exit_status(console: &str) -> Option<i32> {
    console
        .lines()
        .find_map(|line| line.trim().split(STATUS_MARKER).nth(1)?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_entries_are_newc_and_aligned() {
        let mut initramfs = Initramfs::default();
        initramfs.add_file(Path::new("/bin/x"), b"hello".to_vec(), 0o755);
        let path = std::env::temp_dir().join(format!("xtask-cpio-test-{}", std::process::id()));
        initramfs.write(&path).unwrap();
        let data = fs::read(&path).unwrap();
        fs::remove_file(&path).unwrap();
        assert!(data.starts_with(b"070701"));
        assert_eq!(data.len() % 4, 0);
        let text = String::from_utf8_lossy(&data);
        assert!(
            text.contains("bin\0")
                && text.contains("bin/x\0")
                && text.contains("hello")
                && text.contains("TRAILER!!!")
        );
        // the directory comes before the file in it
        assert!(text.find("bin\0").unwrap() < text.find("bin/x\0").unwrap());
    }

    #[test]
    fn ldd_output_lists_real_paths() {
        let ldd = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x1)\n\t/lib64/ld-linux-x86-64.so.2 (0x2)\n";
        assert_eq!(
            parse_ldd(ldd),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert!(parse_ldd("\tnot a dynamic executable\n").is_empty());
    }

    #[test]
    fn status_is_read_from_the_console() {
        assert_eq!(
            exit_status("[ 1.0] boot\nXTASK-EXIT-STATUS=3\n[ 2.0] reboot"),
            Some(3)
        );
        assert_eq!(exit_status("\r\nXTASK-EXIT-STATUS=0\r\n"), Some(0));
        assert_eq!(exit_status("Kernel panic - not syncing"), None);
    }

    #[test]
    fn init_quotes_the_command() {
        let script = init_script(
            &["sh".into(), "-c".into(), "touch 'a b'; rm a".into()],
            &[("NO_COLOR".into(), "1".into())],
        )
        .unwrap();
        assert!(
            script.contains(r#"sh -c 'touch '\''a b'\''; rm a' </dev/null"#),
            "{script}"
        );
        assert!(script.contains("export NO_COLOR=1\n"));
        // host paths under /tmp (a CI clone) must stay visible in the guest
        assert!(!script.contains("tmpfs /tmp"), "{script}");
    }
}
