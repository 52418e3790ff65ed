//! The QEMU command line, and the loop that passes on what the guest writes
//! to its serial ports while it runs.

use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::watch::{Stop, Watch};
use super::{Accel, VmRun};
use crate::cmd;

/// ttyS0, ttyS1, ttyS2 in the guest.
pub const CONSOLE: usize = 0;
pub const STDOUT: usize = 1;
pub const STDERR: usize = 2;

/// Serial ports are built into Debian's kernels, unlike virtio and 9p.
pub fn command(run: &VmRun, image: &Path, initrd: &Path, serial: &[PathBuf; 3]) -> Command {
    let mut qemu = Command::new("qemu-system-x86_64");
    match run.accel {
        // thread=single on QEMU < 10: its multi-threaded TCG oopses guests (vm::tcg)
        Accel::Tcg => {
            let accel = super::tcg::accel(qemu.get_program());
            qemu.args(["-accel", accel, "-cpu", "max"])
        }
        Accel::Kvm => qemu.args(["-accel", "kvm", "-cpu", "host"]),
    };
    // no_timer_check: on a loaded host the emulated CPU is too slow for the
    // IO-APIC timer check, which then panics ("IO-APIC + timer doesn't work!").
    let mut append =
        String::from("console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init no_timer_check");
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
    for path in serial {
        qemu.arg("-serial").arg(format!("file:{}", path.display()));
    }
    qemu.stdin(Stdio::null());
    // SAFETY: prctl is async-signal-safe. QEMU dies with the thread that
    // started it (Ctrl-C, a killed test), instead of running on unseen.
    unsafe {
        qemu.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
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
    let mut child = qemu
        .spawn()
        .context("cannot start qemu-system-x86_64: install qemu-system-x86 (cargo xtask deps)")?;
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
