//! `cargo xtask vm`: boot a kernel in QEMU and run one host-built command in it.

pub mod initramfs;
pub mod kernels;

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{cmd, workspace};
use initramfs::Initramfs;

/// One boot of one kernel running one command.
#[derive(Debug, Clone)]
pub struct VmRun {
    /// A name from [`kernels::MATRIX`] or a path to a kernel image.
    pub kernel: String,
    /// The command: a host file path (copied in at the same path) or a busybox applet.
    pub command: Vec<OsString>,
    /// More host files to copy in: (host path, guest path).
    pub extra_files: Vec<(PathBuf, PathBuf)>,
    pub env: Vec<(String, String)>,
    pub smp: u32,
    pub memory_mib: u32,
    pub timeout: Duration,
    /// `kvm` only where it really boots stock kernels (not on this project's CI machines).
    pub accel: Accel,
    /// Echo the kernel console as it boots.
    pub verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    /// Software emulation: slow, works everywhere.
    Tcg,
    Kvm,
}

/// What the command printed and how it ended.
#[derive(Debug)]
pub struct VmOutput {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub console_log: PathBuf,
    /// From starting QEMU to its exit.
    pub elapsed: Duration,
}

impl VmRun {
    pub fn new(kernel: &str, command: impl IntoIterator<Item = impl Into<OsString>>) -> VmRun {
        VmRun {
            kernel: kernel.to_string(),
            command: command.into_iter().map(Into::into).collect(),
            extra_files: Vec::new(),
            env: Vec::new(),
            smp: 2,
            memory_mib: 1024,
            timeout: Duration::from_secs(300),
            accel: Accel::Tcg,
            verbose: false,
        }
    }

    /// Run and collect the output (tests).
    pub fn run_captured(&self) -> Result<VmOutput> {
        self.run(false)
    }

    /// Run with the output streamed to this process's stdout and stderr (the CLI).
    pub fn run_streaming(&self) -> Result<VmOutput> {
        self.run(true)
    }

    fn run(&self, stream: bool) -> Result<VmOutput> {
        let kernel = kernels::resolve(&self.kernel)?;
        let dir = run_dir()?;
        let initrd = dir.join("initramfs.cpio");
        self.initramfs()?.write(&initrd)?;
        let logs = ["console.log", "stdout.log", "stderr.log"].map(|name| dir.join(name));
        for log in &logs {
            File::create(log).with_context(|| format!("creating {}", log.display()))?;
        }

        let mut qemu = Command::new("qemu-system-x86_64");
        match self.accel {
            Accel::Tcg => qemu.args(["-accel", "tcg,thread=multi", "-cpu", "max"]),
            Accel::Kvm => qemu.args(["-accel", "kvm", "-cpu", "host"]),
        };
        qemu.args([
            "-smp",
            &self.smp.to_string(),
            "-m",
            &self.memory_mib.to_string(),
        ])
        .args(["-nodefaults", "-display", "none", "-no-reboot"])
        .arg("-kernel")
        .arg(&kernel.image)
        .arg("-initrd")
        .arg(&initrd)
        .args([
            "-append",
            "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init",
        ]);
        for log in &logs {
            qemu.arg("-serial").arg(format!("file:{}", log.display()));
        }
        qemu.stdin(std::process::Stdio::null());
        cmd::echo(&qemu);
        let started = Instant::now();
        let mut child = qemu.spawn().context(
            "cannot start qemu-system-x86_64: install qemu-system-x86 (cargo xtask deps)",
        )?;

        let mut tails = logs.clone().map(Tail::new);
        let mut collected: [Vec<u8>; 3] = Default::default();
        let mut timed_out = false;
        loop {
            let exited = child.try_wait()?.is_some();
            for (i, tail) in tails.iter_mut().enumerate() {
                let new = tail.read_new()?;
                if stream || (i == 0 && self.verbose) {
                    forward(i, &new, self.verbose)?;
                }
                collected[i].extend_from_slice(&new);
            }
            if exited {
                break;
            }
            if started.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                timed_out = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let elapsed = started.elapsed();
        let console_log = workspace::target_dir()
            .join("vm/logs")
            .join(format!("{}.console.log", kernel.name.replace('/', "_")));
        fs::create_dir_all(console_log.parent().unwrap())?;
        fs::copy(&logs[0], &console_log)?;
        let _ = fs::remove_dir_all(&dir);

        let console = String::from_utf8_lossy(&collected[0]);
        let Some(status) = initramfs::exit_status(&console) else {
            let tail: Vec<&str> = console.lines().rev().take(5).collect();
            let what = if timed_out {
                format!("did not finish within {:?}", self.timeout)
            } else {
                "stopped without reporting the command's exit status".into()
            };
            bail!(
                "the VM ({}) {what}; last console lines: {:?}; full log: {}",
                kernel.name,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
                console_log.display()
            );
        };
        let [_, stdout, stderr] = collected;
        Ok(VmOutput {
            status,
            stdout,
            stderr,
            console_log,
            elapsed,
        })
    }

    fn initramfs(&self) -> Result<Initramfs> {
        let mut initramfs = Initramfs::default();
        let busybox = Path::new("/bin/busybox");
        if !busybox.is_file() {
            bail!("/bin/busybox is missing: install busybox-static (cargo xtask deps)");
        }
        initramfs.add_file(Path::new("/bin/busybox"), fs::read(busybox)?, 0o755);
        for dir in ["/proc", "/sys", "/dev", "/tmp"] {
            initramfs.add_dir(Path::new(dir));
        }
        let mut argv: Vec<String> = Vec::new();
        for (i, arg) in self.command.iter().enumerate() {
            let text = arg
                .to_str()
                .with_context(|| format!("argument {arg:?} is not UTF-8"))?
                .to_string();
            if i == 0 && Path::new(&text).is_file() {
                let host = fs::canonicalize(&text)?;
                initramfs.add_executable(&host, &host)?;
                argv.push(host.display().to_string());
            } else {
                argv.push(text);
            }
        }
        for (host, guest) in &self.extra_files {
            initramfs.add_executable(host, guest)?;
        }
        let mut env = self.env.clone();
        // The guest's serial ports are terminals even when the host's output is a pipe.
        if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            env.push(("NO_COLOR".to_string(), "1".to_string()));
        }
        for key in ["NO_COLOR", "RUST_BACKTRACE", "RUST_LOG"] {
            if let Ok(value) = std::env::var(key) {
                env.push((key.to_string(), value));
            }
        }
        initramfs.add_file(
            Path::new("/init"),
            initramfs::init_script(&argv, &env)?.into_bytes(),
            0o755,
        );
        Ok(initramfs)
    }
}

/// Reads what QEMU appended to a serial log since the last call.
struct Tail {
    path: PathBuf,
    offset: u64,
}

impl Tail {
    fn new(path: PathBuf) -> Tail {
        Tail { path, offset: 0 }
    }

    fn read_new(&mut self) -> Result<Vec<u8>> {
        let mut file =
            File::open(&self.path).with_context(|| format!("opening {}", self.path.display()))?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(self.offset))?;
        let mut new = Vec::new();
        file.read_to_end(&mut new)?;
        self.offset += new.len() as u64;
        Ok(new)
    }
}

fn forward(stream: usize, bytes: &[u8], verbose: bool) -> Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    match stream {
        1 => {
            std::io::stdout().write_all(bytes)?;
            std::io::stdout().flush()?;
        }
        2 => std::io::stderr().write_all(bytes)?,
        _ if verbose => std::io::stderr().write_all(bytes)?,
        _ => {}
    }
    Ok(())
}

fn run_dir() -> Result<PathBuf> {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let dir = workspace::target_dir().join("vm/runs").join(format!(
        "{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
