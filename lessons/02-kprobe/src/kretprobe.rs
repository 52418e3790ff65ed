//! A kretprobe with enough return slots for many threads inside the function
//! at once.
//!
//! To catch a return, the kernel swaps the function's return address for its
//! own, and keeps the real one in one of the kretprobe's slots until the
//! function returns. The number of slots (`maxactive`) is fixed when the
//! kretprobe is created, and a call that finds none free is not seen on
//! return. libbpf creates kretprobes through the kprobe PMU
//! (`/sys/bus/event_source/devices/kprobe`), which always takes the kernel's
//! default: twice the number of CPUs and at least 10, but only the number of
//! CPUs on older kernels built without preemption. Debian's 5.10 on 2 CPUs
//! gets 2 slots, so five processes deleting files at once miss about a third
//! of the returns.
//!
//! tracefs's `kprobe_events` file lets us ask for more: `r256:` instead of
//! `r:`. We create the kretprobe there, open it as a perf event, and attach
//! the BPF program to that event, as libbpf itself does on kernels without the
//! kprobe PMU. When tracefs is not mounted, the kretprobe falls back to
//! libbpf's way; the lesson still counts each return it misses.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::fd::{FromRawFd as _, IntoRawFd as _, OwnedFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use libbpf_rs::libbpf_sys;
use libbpf_rs::{Link, ProgramMut};

// ANCHOR: slots
/// One slot per thread that can be inside the function at the same time,
/// waiting for a lock or the disk. A slot is a few dozen bytes; the kernel
/// allows up to 4096.
pub const RETURN_SLOTS: u32 = 256;
// ANCHOR_END: slots

/// tracefs's own mount point first, then the older place under debugfs.
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
/// Our kretprobes' event group in tracefs; each event is named for the lesson's pid.
const GROUP: &str = "unlink_lab";

/// An attached kretprobe; dropping it detaches the program and removes the
/// tracefs kretprobe, if the lesson made one.
pub struct Kretprobe {
    link: Option<Link>,
    /// `kprobe_events` and the event's name, when made through tracefs.
    made: Option<(PathBuf, String)>,
}

impl Kretprobe {
    pub fn link(&self) -> &Link {
        self.link.as_ref().expect("set until drop")
    }
}

// ANCHOR: attach
/// Attach `program` to the return of `function` with `slots` return slots,
/// or with the kernel's default when tracefs cannot make the kretprobe.
pub fn attach(
    program: &ProgramMut<'_>,
    function: &str,
    slots: u32,
) -> libbpf_rs::Result<Kretprobe> {
    match attach_through_tracefs(program, function, slots) {
        Ok(kretprobe) => Ok(kretprobe),
        Err(why) => {
            eprintln!(
                "note: the kretprobe gets the kernel's default number of return slots, \
                 not {slots} ({why:#}); returns it misses are counted in the summary"
            );
            Ok(Kretprobe {
                link: Some(program.attach_kprobe(true, function)?),
                made: None,
            })
        }
    }
}

fn attach_through_tracefs(
    program: &ProgramMut<'_>,
    function: &str,
    slots: u32,
) -> Result<Kretprobe> {
    let tracefs = TRACEFS
        .iter()
        .map(Path::new)
        .find(|dir| dir.join("kprobe_events").is_file())
        .context("tracefs is not mounted")?;
    let kprobe_events = tracefs.join("kprobe_events");
    remove_stale_events(&kprobe_events);
    let event = format!("{GROUP}/kretprobe_{}", std::process::id());
    // `r256:GROUP/EVENT FUNCTION`: a kretprobe with 256 return slots.
    define(&kprobe_events, &format!("r{slots}:{event} {function}"))?;
    // From here on, dropping `kretprobe` removes the event again.
    let mut kretprobe = Kretprobe {
        link: None,
        made: Some((kprobe_events, event.clone())),
    };
    let id = read_event_id(&tracefs.join("events").join(&event).join("id"))?;
    let perf_event = open_perf_event(id)?;
    // libbpf's link owns the perf event from here and closes it on detach.
    let link = program
        .attach_perf_event(perf_event.into_raw_fd())
        .with_context(|| format!("attaching to the perf event of {event}"))?;
    kretprobe.link = Some(link);
    Ok(kretprobe)
}
// ANCHOR_END: attach

/// Append one line to `kprobe_events`. Appending matters: opening it for
/// writing without O_APPEND deletes every kprobe on the system. As root,
/// never through a symlink.
fn define(kprobe_events: &Path, line: &str) -> Result<()> {
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(kprobe_events)?;
        file.write_all(line.as_bytes())
    };
    write().with_context(|| format!("writing `{line}` to {}", kprobe_events.display()))
}

fn read_event_id(path: &Path) -> Result<u64> {
    let mut text = String::new();
    File::open(path)
        .and_then(|file| file.take(32).read_to_string(&mut text))
        .with_context(|| format!("reading {}", path.display()))?;
    match text.trim().parse() {
        Ok(id) => Ok(id),
        Err(_) => bail!("{} holds {text:?}, not an event id", path.display()),
    }
}

/// A tracepoint-type perf event for tracefs event `id`, on every process (pid
/// -1) through CPU 0's context, which is how a kprobe event is opened for BPF.
fn open_perf_event(id: u64) -> Result<OwnedFd> {
    let attr = libbpf_sys::perf_event_attr {
        type_: libbpf_sys::PERF_TYPE_TRACEPOINT,
        size: size_of::<libbpf_sys::perf_event_attr>() as u32,
        config: id,
        ..Default::default()
    };
    // SAFETY: attr is a valid perf_event_attr of the size it states; the
    // kernel returns a new file descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr,
            -1,
            0,
            -1,
            libbpf_sys::PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("perf_event_open");
    }
    // SAFETY: fd is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A lesson killed with SIGKILL leaves its kretprobe behind in tracefs:
/// remove those whose lesson is gone (and one whose pid is ours again).
fn remove_stale_events(kprobe_events: &Path) {
    // A line per kprobe on the system; 1 MiB holds thousands of them.
    let mut defined = String::new();
    let read =
        File::open(kprobe_events).and_then(|file| file.take(1 << 20).read_to_string(&mut defined));
    if read.is_err() {
        return;
    }
    let prefix = format!("{GROUP}/kretprobe_");
    for line in defined.lines() {
        // A line reads `r256:unlink_lab/kretprobe_PID do_unlinkat`.
        let Some(event) = line
            .split_whitespace()
            .next()
            .and_then(|probe| probe.split_once(':'))
            .map(|(_, event)| event)
        else {
            continue;
        };
        let Some(pid) = event.strip_prefix(&prefix) else {
            continue;
        };
        let ours = pid == std::process::id().to_string();
        if ours || !Path::new("/proc").join(pid).exists() {
            let _ = define(kprobe_events, &format!("-:{event}"));
        }
    }
}

impl Drop for Kretprobe {
    fn drop(&mut self) {
        // Detach first: the kernel refuses to remove an event that is in use.
        drop(self.link.take());
        if let Some((kprobe_events, event)) = &self.made {
            let _ = define(kprobe_events, &format!("-:{event}"));
        }
    }
}
