//! The live check: load the lessons' own programs, attach them to the unlink
//! function, unlink a file, and see both programs fire. Only this proves a
//! lesson works: load-only feature probes say "supported" where attach fails.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel as _, SkelBuilder as _};
use libbpf_rs::{MapCore as _, MapFlags, MapMut, RingBufferBuilder};
use unlink_common::classify;
use unlink_common::events::{Event, Filename};
use unlink_common::libbpf_log;
use unlink_common::probe::{Probe, Stage};

mod doctor_kprobe {
    include!(concat!(env!("OUT_DIR"), "/doctor_kprobe.skel.rs"));
}
mod doctor_fentry {
    include!(concat!(env!("OUT_DIR"), "/doctor_fentry.skel.rs"));
}
use doctor_fentry::DoctorFentrySkelBuilder;
use doctor_kprobe::DoctorKprobeSkelBuilder;

/// How long to wait for the event after the unlink (it is emitted during the syscall).
const WAIT: Duration = Duration::from_millis(200);
/// A small ring buffer: one event is expected.
const RING_BYTES: u32 = 16 * 4096;

#[derive(Debug, Clone)]
pub enum Outcome {
    /// Not run, and why.
    Skipped(String),
    /// Both programs ran on the doctor's own unlink.
    Fired { ret: i32, latency_ns: u64 },
    /// The kernel refused: at which step, with the errno and libbpf's log.
    Failed {
        stage: Stage,
        step: &'static str,
        errno: Option<i32>,
        message: String,
        log: String,
    },
    /// Attached, unlinked, and no event: the entry program ran or not.
    Silent { entry_fired: bool },
}

/// Run the live check for `probe`'s lesson on `function`.
pub fn check(probe: Probe, function: &str) -> Outcome {
    libbpf_log::clear();
    match probe {
        Probe::Kprobe => kprobe(function),
        Probe::Fentry => fentry(function),
    }
}

fn failed(stage: Stage, step: &'static str, error: libbpf_rs::Error) -> Outcome {
    let log = libbpf_log::text();
    Outcome::Failed {
        stage,
        step,
        errno: classify::errno_of(&error),
        message: format!("{error:#}"),
        log,
    }
}

fn kprobe(function: &str) -> Outcome {
    let mut object = MaybeUninit::uninit();
    let mut open = match DoctorKprobeSkelBuilder::default().open(&mut object) {
        Ok(open) => open,
        Err(err) => return failed(Stage::Load, "opening the BPF object", err),
    };
    if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
        rodata.filter_by_tgid = true;
    }
    if let Err(err) = open.maps.events.set_max_entries(RING_BYTES) {
        return failed(Stage::Load, "sizing the ring buffer", err);
    }
    open.progs.follow_fork.set_autoload(false);
    open.progs.forget_exit.set_autoload(false);
    let skel = match open.load() {
        Ok(skel) => skel,
        Err(err) => return failed(Stage::Load, "loading the kprobe programs", err),
    };
    if let Err(err) = trace_self(&skel.maps.traced_tgids) {
        return failed(Stage::Load, "filling traced_tgids", err);
    }
    let _entry = match skel.progs.unlink_entry.attach_kprobe(false, function) {
        Ok(link) => link,
        Err(err) => return failed(Stage::Attach, "attaching the kprobe", err),
    };
    let _exit = match skel.progs.unlink_exit.attach_kprobe(true, function) {
        Ok(link) => link,
        Err(err) => return failed(Stage::Attach, "attaching the kretprobe", err),
    };
    trigger_and_wait(&skel.maps.events, &skel.maps.in_flight)
}

fn fentry(function: &str) -> Outcome {
    let mut object = MaybeUninit::uninit();
    let mut open = match DoctorFentrySkelBuilder::default().open(&mut object) {
        Ok(open) => open,
        Err(err) => return failed(Stage::Load, "opening the BPF object", err),
    };
    if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
        rodata.filter_by_tgid = true;
    }
    if let Err(err) = open.maps.events.set_max_entries(RING_BYTES) {
        return failed(Stage::Load, "sizing the ring buffer", err);
    }
    open.progs.follow_fork.set_autoload(false);
    open.progs.forget_exit.set_autoload(false);
    for prog in [&mut open.progs.unlink_entry, &mut open.progs.unlink_exit] {
        if let Err(err) = prog.set_attach_target(0, Some(function.to_string())) {
            return failed(Stage::Load, "choosing the fentry/fexit target", err);
        }
    }
    let skel = match open.load() {
        Ok(skel) => skel,
        Err(err) => return failed(Stage::Load, "loading the fentry/fexit programs", err),
    };
    if let Err(err) = trace_self(&skel.maps.traced_tgids) {
        return failed(Stage::Load, "filling traced_tgids", err);
    }
    let _entry = match skel.progs.unlink_entry.attach() {
        Ok(link) => link,
        Err(err) => return failed(Stage::Attach, "attaching fentry", err),
    };
    let _exit = match skel.progs.unlink_exit.attach() {
        Ok(link) => link,
        Err(err) => return failed(Stage::Attach, "attaching fexit", err),
    };
    trigger_and_wait(&skel.maps.events, &skel.maps.entered_at)
}

/// Report only this process's unlinks (the lessons' `--pid`).
fn trace_self(traced_tgids: &MapMut<'_>) -> libbpf_rs::Result<()> {
    traced_tgids.update(&std::process::id().to_ne_bytes(), &[1u8], MapFlags::ANY)
}

/// Unlink a file of our own and wait for its event. `pending` is the map where the entry
/// program parks per-thread state until the exit program runs: an entry left there means
/// only the entry program fired.
fn trigger_and_wait(events: &MapMut<'_>, pending: &MapMut<'_>) -> Outcome {
    let marker = format!("unlink-doctor-{}-{}", std::process::id(), unique());
    let path = std::env::temp_dir().join(&marker);
    let seen: RefCell<Option<Event>> = RefCell::new(None);
    let mut on_event = |data: &[u8]| {
        if let Some(event) = Event::parse(data) {
            let ours = match &event.filename {
                Filename::Complete(name) | Filename::Truncated(name) => {
                    name.ends_with(marker.as_bytes())
                }
                Filename::Unreadable => event.pid == std::process::id(),
            };
            if ours {
                *seen.borrow_mut() = Some(event);
            }
        }
        0
    };
    let mut builder = RingBufferBuilder::new();
    if let Err(err) = builder.add(events, &mut on_event) {
        return failed(Stage::Attach, "reading the ring buffer", err);
    }
    let ring = match builder.build() {
        Ok(ring) => ring,
        Err(err) => return failed(Stage::Attach, "reading the ring buffer", err),
    };
    // Creating may fail (read-only /tmp): unlinking a missing file still runs the function.
    let _ = std::fs::File::create(&path);
    let _ = std::fs::remove_file(&path);
    let deadline = Instant::now() + WAIT;
    while seen.borrow().is_none() && Instant::now() < deadline {
        let _ = ring.poll(Duration::from_millis(10));
    }
    drop(ring);
    match seen.into_inner() {
        Some(event) => Outcome::Fired {
            ret: event.ret,
            latency_ns: event.latency_ns,
        },
        None => {
            let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
            let entry_fired = pending
                .lookup(&tid.to_ne_bytes(), MapFlags::ANY)
                .ok()
                .flatten()
                .is_some();
            Outcome::Silent { entry_fired }
        }
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}
