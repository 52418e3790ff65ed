//! The guest's root file system: busybox, an init script, and the host files
//! to run with the shared libraries they need, at the same paths as on the host.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::apt::PrivateApt;
use super::Arch;
use crate::cmd::{self, shell_quote};
use crate::workspace;

/// Where busybox is, in the guest and (for x86_64) on the host.
pub const BUSYBOX: &str = "/bin/busybox";

/// The host file to copy in as the guest's busybox: the host's own on
/// x86_64; on arm64 Debian bookworm's busybox-static for arm64, downloaded
/// once into target/vm/arm64-busybox/.
pub fn busybox(arch: Arch) -> Result<PathBuf> {
    if arch == Arch::X86_64 {
        return Ok(PathBuf::from(BUSYBOX));
    }
    let dir = workspace::vm_dir().join(format!("{}busybox", arch.cache_prefix()));
    let cached = dir.join("busybox");
    if cached.is_file() {
        return Ok(cached);
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = workspace::lock_dir(&dir)?;
    if cached.is_file() {
        return Ok(cached);
    }
    let apt = PrivateApt::verified(&["bookworm"], arch)?;
    let unpacked = apt.download_and_unpack(&["busybox-static"])?;
    let partial = dir.join("busybox.partial");
    fs::copy(unpacked.join("bin/busybox"), &partial)
        .context("Debian's arm64 busybox-static has no bin/busybox")?;
    fs::rename(&partial, &cached)?;
    fs::remove_dir_all(&unpacked)?;
    Ok(cached)
}

/// The whole initramfs of one run, with `busybox` as the guest's /bin/busybox
/// and `modules` in /lib/modules/ for init to load.
pub fn build(
    init: &str,
    busybox: &Path,
    modules: &[PathBuf],
    executables: &[(PathBuf, PathBuf)],
    scratch: &Path,
    arch: Arch,
) -> Result<Vec<u8>> {
    let busybox = fs::read(busybox).with_context(|| {
        format!(
            "reading {}: install busybox-static (cargo xtask deps)",
            busybox.display()
        )
    })?;
    let mut cpio = Cpio::default();
    for dir in [
        "/proc",
        "/sys",
        "/dev",
        "/tmp",
        "/sbin",
        "/usr/bin",
        "/usr/sbin",
    ] {
        cpio.dir(Path::new(dir));
    }
    // Opened by the kernel for init's stdin/stdout/stderr, before devtmpfs is mounted.
    cpio.char_device(Path::new("/dev/console"), 0o600, 5, 1);
    cpio.file(Path::new(BUSYBOX), &busybox, 0o755);
    cpio.file(Path::new("/init"), init.as_bytes(), 0o755);
    for module in modules {
        let name = module.file_name().context("a module path without a name")?;
        let data = fs::read(module).with_context(|| format!("reading {}", module.display()))?;
        cpio.file(&Path::new("/lib/modules").join(name), &data, 0o644);
    }
    for (host, guest) in executables {
        add_executable(&mut cpio, host, guest, scratch, arch)?;
    }
    Ok(cpio.finish())
}

/// A host file (debug info stripped from ELF files, to keep the archive and
/// the boot small) and, for dynamically linked ones, every library `ldd` lists.
/// arm64 programs must be static: the host has no arm64 libraries to copy.
fn add_executable(
    cpio: &mut Cpio,
    host: &Path,
    guest: &Path,
    scratch: &Path,
    arch: Arch,
) -> Result<()> {
    let data = fs::read(host).with_context(|| format!("reading {}", host.display()))?;
    if !data.starts_with(b"\x7fELF") {
        cpio.file(guest, &data, 0o755);
        return Ok(());
    }
    let elf = ElfInfo::of(&data)
        .with_context(|| format!("{}: not a 64-bit little-endian ELF file", host.display()))?;
    if elf.machine != elf_machine(arch) {
        bail!(
            "{} is not an {arch} program; build it with `cargo xtask build --arch {arch}`",
            host.display()
        );
    }
    if arch == Arch::Arm64 && elf.dynamic {
        bail!(
            "{} is dynamically linked; arm64 guests run static programs (`cargo xtask build --arch arm64` makes them)",
            host.display()
        );
    }
    let strip = match arch {
        Arch::X86_64 => "strip",
        Arch::Arm64 => "aarch64-linux-gnu-strip",
    };
    let copy = scratch.join(format!("stripped-{}", cpio.len()));
    cmd::run(
        Command::new(strip)
            .arg("--strip-debug")
            .arg("-o")
            .arg(&copy)
            .arg(host),
    )?;
    cpio.file(guest, &fs::read(&copy)?, 0o755);
    fs::remove_file(&copy)?;
    if arch == Arch::Arm64 {
        return Ok(());
    }

    let mut ldd = Command::new("ldd");
    ldd.arg(host);
    cmd::echo(&ldd);
    // ldd fails on static binaries: they need nothing more.
    let libraries = parse_ldd(&String::from_utf8_lossy(
        &ldd.output().context("cannot run ldd")?.stdout,
    ));
    for library in libraries {
        let data = fs::read(&library).with_context(|| format!("reading {}", library.display()))?;
        cpio.file(&library, &data, 0o755);
    }
    Ok(())
}

/// ELF e_machine: EM_X86_64, EM_AARCH64.
fn elf_machine(arch: Arch) -> u16 {
    match arch {
        Arch::X86_64 => 62,
        Arch::Arm64 => 183,
    }
}

/// What an ELF header and its program headers say about running it.
#[derive(Debug, PartialEq)]
struct ElfInfo {
    machine: u16,
    /// It has a PT_INTERP: the dynamic loader and libraries must be there too.
    dynamic: bool,
}

impl ElfInfo {
    fn of(data: &[u8]) -> Option<ElfInfo> {
        // ELFCLASS64, ELFDATA2LSB
        if data.get(..6)? != b"\x7fELF\x02\x01" {
            return None;
        }
        let u16_at = |at: usize| Some(u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?));
        let u32_at = |at: usize| Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?));
        let phoff = u64::from_le_bytes(data.get(0x20..0x28)?.try_into().ok()?) as usize;
        let (phentsize, phnum) = (u16_at(0x36)? as usize, u16_at(0x38)? as usize);
        const PT_INTERP: u32 = 3;
        let dynamic = (0..phnum)
            .map(|i| u32_at(phoff.checked_add(i.checked_mul(phentsize)?)?))
            .any(|p_type| p_type == Some(PT_INTERP));
        Some(ElfInfo {
            machine: u16_at(0x12)?,
            dynamic,
        })
    }
}

/// The absolute paths in `ldd` output, the dynamic loader included.
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

/// A newc ("070701") cpio archive, the format the kernel unpacks.
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    written: BTreeSet<PathBuf>,
}

impl Cpio {
    fn len(&self) -> usize {
        self.written.len()
    }

    fn dir(&mut self, path: &Path) {
        self.entry(path, 0o040755, &[], 0);
    }

    fn file(&mut self, path: &Path, data: &[u8], mode: u32) {
        self.entry(path, 0o100000 | mode, data, 0);
    }

    fn char_device(&mut self, path: &Path, mode: u32, major: u32, minor: u32) {
        self.entry(path, 0o020000 | mode, &[], (major << 8) | minor);
    }

    /// Writes missing parent directories first (the kernel creates no
    /// parents); the first entry for a path wins.
    fn entry(&mut self, path: &Path, mode: u32, data: &[u8], rdev: u32) {
        let mut parents: Vec<&Path> = path
            .ancestors()
            .skip(1)
            .filter(|p| !matches!(p.to_str(), Some("" | "/")))
            .collect();
        parents.reverse();
        for parent in parents {
            if !self.written.contains(parent) {
                self.header(parent, 0o040755, 0, 0);
            }
        }
        if self.written.contains(path) {
            return;
        }
        self.header(path, mode, data.len(), rdev);
        self.out.extend_from_slice(data);
        self.pad(4);
    }

    fn header(&mut self, path: &Path, mode: u32, size: usize, rdev: u32) {
        self.written.insert(path.to_path_buf());
        let name = path.strip_prefix("/").unwrap_or(path).as_os_str();
        let name = name.as_encoded_bytes();
        let fields = [
            self.written.len() as u32, // ino: unique, no hard links
            mode,
            0, // uid: root
            0, // gid
            1, // nlink
            0, // mtime
            size as u32,
            0, // dev major
            0,
            rdev >> 8, // rdev major
            rdev & 0xff,
            name.len() as u32 + 1,
            0, // check: unused in newc
        ];
        self.out.extend_from_slice(b"070701");
        for field in fields {
            self.out
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.out.extend_from_slice(name);
        self.out.push(0);
        self.pad(4);
    }

    fn pad(&mut self, to: usize) {
        self.out.resize(self.out.len().next_multiple_of(to), 0);
    }

    fn finish(mut self) -> Vec<u8> {
        self.header(Path::new("TRAILER!!!"), 0, 0, 0);
        self.out
    }
}

/// The console line that carries the command's exit status.
pub const STATUS_MARKER: &str = "XTASK-EXIT-STATUS=";

/// What the guest's /init does: mount the file systems BPF tools expect, run
/// the command in /tmp with stdout and stderr on the 2nd and 3rd of `ports`
/// (ttyS1 and ttyS2 on x86_64), report its status on the console (the 1st),
/// power off. No tmpfs on /tmp: the initramfs root is already writable, and
/// it would hide host files copied in under /tmp.
pub fn init_script(
    argv: &[String],
    env: &[(String, String)],
    [console, stdout, stderr]: [&str; 3],
) -> Result<String> {
    if argv.is_empty() {
        bail!("no command to run in the VM");
    }
    let mut exports = String::new();
    for (key, value) in env {
        let valid = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            bail!("{key:?} is not an environment variable name");
        }
        exports.push_str(&format!("export {key}={}\n", shell_quote(value.as_ref())));
    }
    let argv: Vec<String> = argv.iter().map(|a| shell_quote(a.as_ref())).collect();
    Ok(format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for module in /lib/modules/*.ko; do [ -e "$module" ] && insmod "$module"; done
# Virtio consoles (arm64's stdout and stderr) appear just after their driver.
i=0; while [ ! -e /dev/{stderr} ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
# Held open to the end: virtio consoles (hvc) reset their modes on the last close.
exec 3>/dev/{stdout} 4>/dev/{stderr}
# raw: bytes pass unchanged (no \n -> \r\n)
stty -F /dev/{stdout} raw -echo
stty -F /dev/{stderr} raw -echo
# the host's watcher takes a silent console for a hung guest
(while sleep {heartbeat}; do printf '\r'; done) >/dev/{console} 2>&1 </dev/null 3>&- 4>&- &
heartbeat=$!
{exports}cd /tmp
{argv} </dev/null >/dev/{stdout} 2>/dev/{stderr} 3>&- 4>&-
status=$?
kill $heartbeat
# stty sets modes with TCSADRAIN: it returns once the ports have sent everything
stty -F /dev/{stdout} raw
stty -F /dev/{stderr} raw
echo "{STATUS_MARKER}$status" >/dev/{console}
poweroff -f
"#,
        argv = argv.join(" "),
        heartbeat = super::watch::HEARTBEAT_SECS,
    ))
}

/// The command's exit status from the console log, if the guest got that far.
pub fn exit_status(console: &str) -> Option<i32> {
    console.lines().find_map(|line| {
        let (_, status) = line.split_once(STATUS_MARKER)?;
        status.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, mode, rdev major, rdev minor, data) of each entry, parsed back.
    fn entries(archive: &[u8]) -> Vec<(String, u32, u32, u32, Vec<u8>)> {
        let mut entries = Vec::new();
        let mut at = 0;
        loop {
            assert_eq!(&archive[at..at + 6], b"070701", "magic at {at}");
            let field = |i: usize| {
                let hex = std::str::from_utf8(&archive[at + 6 + 8 * i..at + 14 + 8 * i]).unwrap();
                u32::from_str_radix(hex, 16).unwrap() as usize
            };
            let (mode, size, major, minor, name_len) =
                (field(1), field(6), field(9), field(10), field(11));
            let name_at = at + 110;
            let name =
                String::from_utf8(archive[name_at..name_at + name_len - 1].to_vec()).unwrap();
            assert_eq!(archive[name_at + name_len - 1], 0, "NUL after {name}");
            let data_at = (name_at + name_len).next_multiple_of(4);
            let data = archive[data_at..data_at + size].to_vec();
            at = (data_at + size).next_multiple_of(4);
            if name == "TRAILER!!!" {
                assert_eq!(at, archive.len());
                return entries;
            }
            entries.push((name, mode as u32, major as u32, minor as u32, data));
        }
    }

    #[test]
    fn cpio_is_newc_with_parents_first() {
        let mut cpio = Cpio::default();
        cpio.file(Path::new("/usr/lib/x.so"), b"hello", 0o755);
        cpio.file(Path::new("/usr/lib/x.so"), b"again", 0o755);
        cpio.dir(Path::new("/usr"));
        cpio.char_device(Path::new("/dev/console"), 0o600, 5, 1);
        let entries = entries(&cpio.finish());
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            ["usr", "usr/lib", "usr/lib/x.so", "dev", "dev/console"]
        );
        assert_eq!(entries[0].1, 0o040755);
        assert_eq!(
            (entries[2].1, entries[2].4.as_slice()),
            (0o100755, &b"hello"[..])
        );
        assert_eq!((entries[4].1, entries[4].2, entries[4].3), (0o020600, 5, 1));
    }

    #[test]
    fn elf_headers_tell_the_machine_and_linking() {
        let mut elf = vec![0u8; 0x100];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x12..0x14].copy_from_slice(&183u16.to_le_bytes());
        elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        elf[0x40..0x44].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        let info = ElfInfo::of(&elf).unwrap();
        assert_eq!((info.machine, info.dynamic), (183, false));
        elf[0x78..0x7c].copy_from_slice(&3u32.to_le_bytes()); // PT_INTERP
        assert!(ElfInfo::of(&elf).unwrap().dynamic);
        elf[0x38..0x3a].copy_from_slice(&100u16.to_le_bytes()); // past the end
        assert!(ElfInfo::of(&elf).unwrap().dynamic);
        assert_eq!(ElfInfo::of(&elf[..0x20]), None, "truncated");
        assert_eq!(ElfInfo::of(b"\x7fELF\x01\x01"), None, "32-bit");
        let host = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(
            ElfInfo::of(&host).unwrap().machine,
            elf_machine(Arch::X86_64)
        );
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
        assert_eq!(
            exit_status("[ 2.1] oopsXTASK-EXIT-STATUS=130\r\n"),
            Some(130)
        );
        assert_eq!(exit_status("Kernel panic - not syncing: x"), None);
        assert_eq!(exit_status("XTASK-EXIT-STATUS=\n"), None);
    }

    #[test]
    fn init_quotes_the_command_and_env() {
        let script = init_script(
            &["sh".into(), "-c".into(), "touch 'a b'; rm a".into()],
            &[("NO_COLOR".into(), "1".into()), ("X".into(), "a b".into())],
            ["ttyS0", "ttyS1", "ttyS2"],
        )
        .unwrap();
        assert!(
            script.contains(r#"sh -c 'touch '\''a b'\''; rm a' </dev/null >/dev/ttyS1"#),
            "{script}"
        );
        assert!(script.contains("export NO_COLOR=1\nexport X='a b'\n"));
        // host paths under /tmp (a CI clone) must stay visible in the guest
        assert!(!script.contains("tmpfs /tmp"), "{script}");
        let ports = ["ttyAMA0", "hvc0", "hvc1"];
        let script = init_script(&["true".into()], &[], ports).unwrap();
        assert!(
            script.contains("exec 3>/dev/hvc0 4>/dev/hvc1\n"),
            "{script}"
        );
        assert!(script.contains("true </dev/null >/dev/hvc0 2>/dev/hvc1 3>&- 4>&-\n"));
        assert!(script.contains(">/dev/ttyAMA0\n"), "{script}");
        assert!(init_script(&["true".into()], &[("A B".into(), "1".into())], ports).is_err());
        assert!(init_script(&[], &[], ports).is_err());
    }
}
