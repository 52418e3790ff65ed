//! `cargo xtask vm`: boot a kernel in QEMU and run one command in it.
//!
//! The guest is a busybox initramfs. Its init mounts proc, sysfs, devtmpfs,
//! tracefs, debugfs, bpffs and securityfs, runs the command as root in /tmp
//! with stdout on ttyS1 and stderr on ttyS2, prints the exit status on the
//! console (ttyS0) and powers off. Each port goes to a file that is passed
//! on to this process as it grows.
//!
//! ```no_run
//! let output = xtask::vm::VmRun::new("debian-6.12", ["uname", "-r"]).run_captured()?;
//! assert_eq!(output.status, 0);
//! # anyhow::Ok(())
//! ```

pub(crate) mod apt;
mod apt_root;
mod initramfs;
pub mod kernels;
mod modules;
mod qemu;
pub mod tcg;
pub mod watch;

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{IsTerminal, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::{cmd, workspace};
pub use kernels::{Kernel, KernelSpec, MATRIX};

/// One boot of one kernel running one command. Build it with [`VmRun::new`],
/// then adjust the public fields.
#[derive(Debug, Clone)]
pub struct VmRun {
    pub kernel: KernelSpec,
    /// The guest's architecture: Debian's kernel of that architecture, its
    /// busybox, and programs built for it.
    pub arch: Arch,
    /// The program and its arguments. The program is a host file (a path with
    /// a `/`: copied in at its absolute path, with its shared libraries), a
    /// busybox applet, or else a program on the host's PATH (copied in).
    pub command: Vec<OsString>,
    /// More host files to copy in, with their libraries: (host path, absolute guest path).
    pub extra_files: Vec<(PathBuf, PathBuf)>,
    /// Set for the command, after NO_COLOR and RUST_BACKTRACE from this process.
    pub env: Vec<(String, String)>,
    pub smp: u32,
    pub memory_mib: u32,
    /// For the whole boot and run; then QEMU is killed and the run fails.
    pub timeout: Duration,
    /// A guest that prints nothing for this long (its init writes a heartbeat
    /// every few seconds) is hung: QEMU is killed and the run fails.
    pub silence_limit: Duration,
    pub accel: Accel,
    /// Which QEMU runs the guest, and how (`cargo xtask vm-soak` changes it).
    pub qemu: QemuChoice,
    /// Appended to the kernel command line.
    pub append: Vec<String>,
    /// Echo the kernel console (ttyS0) to stderr as it boots.
    pub verbose: bool,
}

/// Which QEMU binary runs the guest, and how.
#[derive(Debug, Clone, Default)]
pub struct QemuChoice {
    /// Instead of `qemu-system-ARCH` on PATH, e.g. one unpacked from backports.
    pub binary: Option<PathBuf>,
    /// Its firmware directories, passed as -L.
    pub firmware: Vec<PathBuf>,
    /// TCG's threads for x86_64; auto is vm::tcg's measured choice for the
    /// binary. (arm64 always runs a thread per vCPU: see qemu.rs.)
    pub threads: tcg::Threads,
    /// QEMU's niceness, so that a long soak does not starve the host.
    pub nice: i32,
}

/// A CPU architecture the lessons are built for and run on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    /// x86_64 (Debian's amd64): QEMU's q35-like default machine.
    #[default]
    #[value(name = "x86_64", alias = "amd64")]
    X86_64,
    /// aarch64 (Debian's arm64): QEMU's `virt` machine, always emulated (TCG).
    #[value(alias = "aarch64")]
    Arm64,
}

impl Arch {
    /// Debian's name for it, as in `linux-image-arm64`.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// Rust's target triple, as in target/aarch64-unknown-linux-gnu/.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// Prefixed to cache directory names: x86_64 keeps the plain ones.
    pub fn cache_prefix(self) -> &'static str {
        match self {
            Arch::X86_64 => "",
            Arch::Arm64 => "arm64-",
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    /// Software emulation: slow, boots stock kernels everywhere.
    Tcg,
    /// Only where KVM boots stock kernels (not on this project's machines).
    Kvm,
}

/// The guest kernel stopped (a panic, a reboot) before the command reported
/// its exit status.
#[derive(Debug)]
struct GuestDied(String);

impl std::fmt::Display for GuestDied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GuestDied {}

/// What the command printed and how it ended.
#[derive(Debug)]
pub struct VmOutput {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The kernel console of this run (kept under target/vm/logs/).
    pub console_log: PathBuf,
    /// From starting QEMU to its exit: boot, run and power-off.
    pub elapsed: Duration,
}

impl VmRun {
    /// Defaults: 2 CPUs, 1024 MiB, 300 s, hung after 60 s of silence, TCG.
    pub fn new(
        kernel: impl Into<KernelSpec>,
        command: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> VmRun {
        VmRun {
            kernel: kernel.into(),
            arch: Arch::X86_64,
            command: command.into_iter().map(Into::into).collect(),
            extra_files: Vec::new(),
            env: Vec::new(),
            smp: 2,
            memory_mib: 1024,
            timeout: Duration::from_secs(300),
            silence_limit: Duration::from_secs(60),
            accel: Accel::Tcg,
            qemu: QemuChoice::default(),
            append: Vec::new(),
            verbose: false,
        }
    }

    /// Run and collect stdout and stderr. A guest kernel that dies, oopses or
    /// hangs is booted once more: emulated SMP (TCG) now and then trips over
    /// the kernel's own live code patching (an int3 oops on 7.2). A crash of
    /// the command's own making happens again and still fails.
    pub fn run_captured(&self) -> Result<VmOutput> {
        match self.run(false) {
            Err(err) if err.is::<GuestDied>() => {
                eprintln!("vm: {err:#}; booting once more");
                self.run(false)
            }
            result => result,
        }
    }

    /// Run with stdout and stderr passed on live to this process's; returns
    /// the command's exit status.
    pub fn run_streaming(&self) -> Result<i32> {
        let output = self.run(true)?;
        eprintln!(
            "vm: exit status {} after {:.1} s on {}",
            output.status,
            output.elapsed.as_secs_f64(),
            self.kernel
        );
        Ok(output.status)
    }

    /// One boot, not retried (`vm-soak` counts the failures).
    pub fn run(&self, stream: bool) -> Result<VmOutput> {
        let (argv, program) = self.guest_command()?;
        let kernel = self.kernel.resolve(self.arch)?;
        let dir = RunDir::new()?;
        let mut executables: Vec<(PathBuf, PathBuf)> = program
            .map(|path| (path.clone(), path))
            .into_iter()
            .collect();
        executables.extend(self.extra_files.iter().cloned());
        for (_, guest) in &executables {
            if !guest.is_absolute() {
                bail!("guest path {} is not absolute", guest.display());
            }
        }
        let ports = qemu::guest_ports(self.arch);
        let init = initramfs::init_script(&argv, &self.guest_env(stream), ports)?;
        let initrd = dir.join("initramfs.cpio");
        let busybox = initramfs::busybox(self.arch)?;
        let archive = initramfs::build(
            &init,
            &busybox,
            &kernel.modules,
            &executables,
            &dir,
            self.arch,
        )?;
        File::create_new(&initrd)
            .and_then(|mut file| file.write_all(&archive))
            .with_context(|| format!("writing {}", initrd.display()))?;

        let serial = ["console.log", "stdout.log", "stderr.log"].map(|name| dir.join(name));
        for path in &serial {
            File::create_new(path).with_context(|| format!("creating {}", path.display()))?;
        }
        let mut collected: [Vec<u8>; 3] = Default::default();
        let finished = qemu::run(
            qemu::command(self, &kernel.image, &initrd, &serial),
            &serial,
            self.timeout,
            self.silence_limit,
            |port, bytes| {
                match port {
                    qemu::STDOUT if stream => {
                        let mut stdout = std::io::stdout().lock();
                        stdout.write_all(bytes)?;
                        stdout.flush()?;
                    }
                    qemu::STDERR if stream => std::io::stderr().write_all(bytes)?,
                    qemu::CONSOLE if self.verbose => std::io::stderr().write_all(bytes)?,
                    _ => {}
                }
                // The console is kept for the exit status; stdout and stderr
                // only when not streamed.
                if port == qemu::CONSOLE || !stream {
                    collected[port].extend_from_slice(bytes);
                }
                Ok(())
            },
        )?;

        let console = String::from_utf8_lossy(&collected[qemu::CONSOLE]).into_owned();
        let status = initramfs::exit_status(&console);
        let label = match &self.kernel {
            KernelSpec::Debian(name) => format!("{}{name}", self.arch.cache_prefix()),
            KernelSpec::Path(_) => kernel.release.clone(),
        };
        let ok = status.is_some() && finished.stopped.is_none();
        let console_log = keep_console_log(&serial[qemu::CONSOLE], &label, ok)?;
        let vm = format!("the VM ({}, Linux {})", kernel.name, kernel.release);
        if let Some(stop) = finished.stopped {
            return Err(GuestDied(format!(
                "{vm} ended after {:.1} s: {stop}\nconsole log: {}",
                finished.elapsed.as_secs_f64(),
                console_log.display()
            ))
            .into());
        }
        let Some(status) = status else {
            if stream && !self.verbose && !console.trim().is_empty() {
                eprintln!("vm: the kernel console:\n{console}");
            }
            if finished.timed_out {
                bail!(
                    "{vm} did not finish within {} s; console log: {}",
                    self.timeout.as_secs(),
                    console_log.display()
                );
            }
            let mut lines = console.lines().map(str::trim).filter(|l| !l.is_empty());
            let last = lines
                .clone()
                .find(|l| l.contains("Kernel panic"))
                .or(lines.next_back());
            return Err(GuestDied(format!(
                "{vm} stopped without reporting the command's exit status ({:?}); console log: {}",
                last.unwrap_or("no console output"),
                console_log.display()
            ))
            .into());
        };
        let [_, stdout, stderr] = collected;
        Ok(VmOutput {
            status,
            stdout,
            stderr,
            console_log,
            elapsed: finished.elapsed,
        })
    }

    /// The guest's argv, and the host file to copy in (at the same path) for its program.
    fn guest_command(&self) -> Result<(Vec<String>, Option<PathBuf>)> {
        let mut argv = Vec::new();
        for arg in &self.command {
            argv.push(
                arg.to_str()
                    .with_context(|| format!("argument {arg:?} is not UTF-8"))?
                    .to_string(),
            );
        }
        let Some(program) = argv.first().cloned() else {
            bail!("no command to run in the VM");
        };
        let host = if program.contains('/') {
            let path = absolute(Path::new(&program))?;
            if !path.is_file() {
                bail!("{program}: no such file");
            }
            if path == Path::new(initramfs::BUSYBOX) {
                return Ok((argv, None));
            }
            path
        } else if busybox_applets()?.contains(&program) {
            return Ok((argv, None));
        } else if self.arch != Arch::X86_64 {
            bail!("{program}: not a file or a busybox applet (programs on this host's PATH do not run on {})", self.arch);
        } else {
            on_path(&program).with_context(|| {
                format!("{program}: not a file, a busybox applet or a program on PATH")
            })?
        };
        argv[0] = host.display().to_string();
        Ok((argv, Some(host)))
    }

    fn guest_env(&self, stream: bool) -> Vec<(String, String)> {
        let mut env = Vec::new();
        // ttyS1 is a terminal, so without this programs would colour output
        // that ends up in a pipe, a file or a test's assertion.
        if !stream || !std::io::stdout().is_terminal() {
            env.push(("NO_COLOR".to_string(), "1".to_string()));
        }
        for key in ["NO_COLOR", "RUST_BACKTRACE"] {
            if let Ok(value) = std::env::var(key) {
                env.push((key.to_string(), value));
            }
        }
        env.extend(self.env.iter().cloned());
        env
    }
}

/// `--add HOST[:GUEST]`: GUEST defaults to HOST's absolute path.
pub fn parse_add(spec: &str) -> Result<(PathBuf, PathBuf)> {
    let (host, guest) = match spec.split_once(':') {
        Some((host, guest)) => (Path::new(host), PathBuf::from(guest)),
        None => (Path::new(spec), absolute(Path::new(spec))?),
    };
    if !host.is_file() {
        bail!("--add {spec}: {} is not a file", host.display());
    }
    Ok((host.to_path_buf(), guest))
}

/// `path` made absolute, with `..` resolved but the last symlink kept
/// (/bin/busybox stays /bin/busybox, the name busybox is already at).
fn absolute(path: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    if absolute.components().any(|c| c == Component::ParentDir) {
        return fs::canonicalize(path).with_context(|| format!("{}: no such file", path.display()));
    }
    Ok(absolute)
}

fn busybox_applets() -> Result<Vec<String>> {
    let list = cmd::output(Command::new(initramfs::BUSYBOX).arg("--list"))?;
    Ok(list.lines().map(str::to_string).collect())
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// A fresh private directory (mode 0700, created exclusively) for one run's
/// initramfs and serial files, removed when dropped. Directories of runs
/// whose process is gone (Ctrl-C) are removed on the way.
struct RunDir(tempfile::TempDir);

impl RunDir {
    fn new() -> Result<RunDir> {
        let runs = workspace::vm_dir().join("runs");
        for entry in fs::read_dir(&runs).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let pid = name.to_string_lossy();
            let pid = pid.split('-').next().unwrap_or_default();
            if !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        fs::create_dir_all(&runs).with_context(|| format!("creating {}", runs.display()))?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", std::process::id()))
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir_in(&runs)
            .with_context(|| format!("creating a run directory in {}", runs.display()))?;
        Ok(RunDir(dir))
    }
}

impl std::ops::Deref for RunDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0.path()
    }
}

/// Moved to target/vm/logs/: NAME.console.log for the latest good run of a
/// kernel, and a name of its own for a failed run, so that parallel runs
/// cannot overwrite the evidence.
fn keep_console_log(log: &Path, label: &str, ok: bool) -> Result<PathBuf> {
    let logs = workspace::vm_dir().join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let kept = if ok {
        logs.join(format!("{label}.console.log"))
    } else {
        let run = log.parent().and_then(Path::file_name).unwrap_or_default();
        logs.join(format!(
            "{label}-failed-{}.console.log",
            run.to_string_lossy()
        ))
    };
    fs::rename(log, &kept).with_context(|| format!("keeping {}", kept.display()))?;
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run directories are private and fresh: no one else can read or plant
    /// files in them, and two runs never share one.
    #[test]
    fn run_directories_are_private_and_unique() {
        let (a, b) = (RunDir::new().unwrap(), RunDir::new().unwrap());
        assert_ne!(&*a, &*b);
        for dir in [&a, &b] {
            let meta = fs::symlink_metadata(&**dir).unwrap();
            assert!(meta.is_dir());
            assert_eq!(
                meta.permissions().mode() & 0o777,
                0o700,
                "{}",
                dir.display()
            );
            assert_eq!(fs::read_dir(&**dir).unwrap().count(), 0);
        }
        let path = a.to_path_buf();
        drop(a);
        assert!(!path.exists());
    }
}
