//! The QEMU command line, and the loop that passes on what the guest writes
//! to its serial ports while it runs.

use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustix::process::{set_parent_process_death_signal, setpriority_process, Signal};

use super::watch::{Stop, Watch};
use super::{Accel, Arch, VmRun};
use crate::cmd;

/// Indexes of the console, the command's stdout and its stderr in
/// [`guest_ports`] and in the files QEMU writes them to.
pub const CONSOLE: usize = 0;
pub const STDOUT: usize = 1;
pub const STDERR: usize = 2;

/// The guest's devices for the console, stdout and stderr. x86_64: three
/// serial ports. arm64: `virt` has one serial port (the PL011, ttyAMA0), so
/// stdout and stderr are virtio consoles, built into Debian's arm64 kernels.
pub fn guest_ports(arch: Arch) -> [&'static str; 3] {
    match arch {
        Arch::X86_64 => ["ttyS0", "ttyS1", "ttyS2"],
        Arch::Arm64 => ["ttyAMA0", "hvc0", "hvc1"],
    }
}

pub fn program(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "qemu-system-x86_64",
        Arch::Arm64 => "qemu-system-aarch64",
    }
}

/// Serial ports (and arm64's virtio consoles) are built into Debian's
/// kernels, unlike virtio block devices and 9p.
pub fn command(run: &VmRun, image: &Path, initrd: &Path, serial: &[PathBuf; 3]) -> Command {
    let mut qemu = match &run.qemu.binary {
        Some(binary) => Command::new(binary),
        None => Command::new(program(run.arch)),
    };
    for firmware in &run.qemu.firmware {
        qemu.arg("-L").arg(firmware);
    }
    match (run.arch, run.accel) {
        // thread=single on QEMU < 10: its multi-threaded TCG oopses x86_64
        // guests while they patch kernel text with int3 (vm::tcg).
        (Arch::X86_64, Accel::Tcg) => {
            let accel = super::tcg::accel(qemu.get_program(), run.qemu.threads);
            qemu.args(["-accel", accel, "-cpu", "max"])
        }
        (Arch::X86_64, Accel::Kvm) => qemu.args(["-accel", "kvm", "-cpu", "host"]),
        // arm64 patches kernel text under stop_machine, not with int3
        // breakpoints that another vCPU may hit, so vm::tcg's measurement does
        // not apply and one thread per vCPU stays. pauth-impdef: QEMU's own
        // pointer-authentication hash instead of the architected QARMA, about
        // 5 times faster a boot under TCG. There is no arm64 KVM on an x86_64
        // host, so --accel is TCG here whatever was asked.
        (Arch::Arm64, _) => qemu.args([
            "-M",
            "virt",
            "-accel",
            "tcg,thread=multi",
            "-cpu",
            "max,pauth-impdef=on",
        ]),
    };
    let [console, ..] = guest_ports(run.arch);
    let mut append = format!("console={console} quiet loglevel=3 panic=-1 rdinit=/init");
    if run.arch == Arch::X86_64 {
        // On a loaded host the emulated CPU is too slow for the IO-APIC
        // timer check, which then panics ("IO-APIC + timer doesn't work!").
        append.push_str(" no_timer_check");
    }
    for arg in &run.append {
        append.push(' ');
        append.push_str(arg);
    }
    qemu.args(["-smp", &run.smp.to_string()])
        .args(["-m", &run.memory_mib.to_string()])
        // -no-reboot: panic=-1 and poweroff both end QEMU.
        .args(["-nodefaults", "-display", "none", "-no-reboot"])
        .arg("-kernel")
        .arg(image)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(append);
    match run.arch {
        Arch::X86_64 => {
            for path in serial {
                qemu.arg("-serial").arg(format!("file:{}", path.display()));
            }
        }
        Arch::Arm64 => {
            qemu.arg("-serial")
                .arg(format!("file:{}", serial[CONSOLE].display()))
                .args(["-device", "virtio-serial-pci"]);
            for (id, path) in [("stdout", &serial[STDOUT]), ("stderr", &serial[STDERR])] {
                qemu.arg("-chardev")
                    .arg(format!("file,id={id},path={}", path.display()))
                    .arg("-device")
                    .arg(format!("virtconsole,chardev={id}"));
            }
        }
    }
    qemu.stdin(Stdio::null());
    let nice = run.qemu.nice;
    // SAFETY: prctl and setpriority are async-signal-safe. QEMU dies with the
    // thread that started it (Ctrl-C, a killed test), instead of running on unseen.
    unsafe {
        qemu.pre_exec(move || {
            set_parent_process_death_signal(Some(Signal::KILL))?;
            if nice != 0 {
                setpriority_process(None, nice)?;
            }
            Ok(())
        });
    }
    qemu
}

pub struct Finished {
    /// From starting QEMU to its exit.
    pub elapsed: Duration,
    pub timed_out: bool,
    /// Why the guest failed, as the watcher saw it: an oops (QEMU killed
    /// once the report was printed, or ended by itself), or silence.
    pub stopped: Option<Stop>,
}

/// Run QEMU to its end, handing `sink` each serial port's new bytes as they
/// arrive (QEMU writes them to the files in `serial`, which must exist).
/// A guest that oopses or prints nothing for `silence_limit` is killed.
pub fn run(
    mut qemu: Command,
    serial: &[PathBuf; 3],
    timeout: Duration,
    silence_limit: Duration,
    mut sink: impl FnMut(usize, &[u8]) -> Result<()>,
) -> Result<Finished> {
    let mut files = Vec::new();
    for path in serial {
        files.push(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    }
    cmd::echo(&qemu);
    let started = Instant::now();
    let program = qemu.get_program().to_string_lossy().into_owned();
    let mut child = qemu
        .spawn()
        .with_context(|| format!("cannot start {program}: install it with `cargo xtask deps`"))?;
    let mut buffer = Vec::new();
    let mut timed_out = false;
    let mut stopped = None;
    let mut watch = Watch::new(silence_limit, started);
    let mut pass_on = |watch: &mut Watch| -> Result<()> {
        for (port, file) in files.iter_mut().enumerate() {
            buffer.clear();
            file.read_to_end(&mut buffer)?;
            if !buffer.is_empty() {
                watch.output(port == CONSOLE, &buffer, Instant::now());
                sink(port, &buffer)?;
            }
        }
        Ok(())
    };
    loop {
        // Checked before reading, so that the last read sees everything.
        let exited = child.try_wait()?.is_some();
        if let Err(err) = pass_on(&mut watch) {
            // e.g. our stdout closed: the guest's output has nowhere to go
            let _ = child.kill();
            child.wait()?;
            return Err(err.context("passing on the guest's output"));
        }
        if exited || timed_out || stopped.is_some() {
            break;
        }
        if let Some(stop) = watch.verdict(Instant::now()) {
            let _ = child.kill();
            child.wait()?;
            stopped = Some(stop);
            continue;
        }
        if started.elapsed() > timeout {
            // Killed and reaped; the loop reads once more, then stops.
            let _ = child.kill();
            child.wait()?;
            timed_out = true;
            continue;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // A guest that oopsed and then ended by itself (panic=-1) still shows why.
    let stopped = stopped.or_else(|| watch.oops());
    Ok(Finished {
        elapsed: started.elapsed(),
        timed_out,
        stopped,
    })
}
