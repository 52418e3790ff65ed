//! Lesson 02: print every unlink, seen by a kprobe on entry and a kretprobe on
//! return of the kernel's unlink function. The BPF side is in
//! src/bpf/unlink_kprobe.bpf.c; the plumbing shared with lesson 03 is in
//! unlink-common.

use std::mem::MaybeUninit;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use libbpf_rs::skel::{OpenSkel as _, SkelBuilder as _};
use libbpf_rs::MapCore as _;
use libbpf_rs::RingBufferBuilder;
use unlink_common::lesson::{interrupted, read_counter};
use unlink_common::{Event, Lesson, LessonArgs, Probe, RawEvent, Stage, TICK};

// ANCHOR: skeleton
mod unlink_kprobe {
    include!(concat!(env!("OUT_DIR"), "/unlink_kprobe.skel.rs"));
}
use unlink_kprobe::UnlinkKprobeSkelBuilder;
// ANCHOR_END: skeleton

/// Watch the kernel's unlink function with a kprobe and a kretprobe.
#[derive(Parser)]
#[command(name = "lesson-02", version)]
struct Cli {
    #[command(flatten)]
    lesson: LessonArgs,
}

fn main() -> ExitCode {
    unlink_common::run(|| {
        // ANCHOR: start
        let lesson = Lesson::start(Cli::parse().lesson, Probe::Kprobe)?;
        // ANCHOR_END: start

        // ANCHOR: open
        let mut object = MaybeUninit::uninit();
        let mut open = UnlinkKprobeSkelBuilder::default()
            .open(&mut object)
            .context("opening the BPF object")?;
        let rodata = open
            .maps
            .rodata_data
            .as_deref_mut()
            .context("the BPF object has no .rodata")?;
        rodata.filter_by_tgid = lesson.filter_by_tgid();
        rodata.filter_comm = lesson.filter_comm();
        rodata.use_printk = lesson.use_printk();
        open.maps
            .events
            .set_max_entries(lesson.ring_buffer_bytes())
            .context("sizing the ring buffer")?;
        open.progs
            .follow_fork
            .set_autoload(lesson.follows_command());
        open.progs
            .forget_exit
            .set_autoload(lesson.follows_command());
        // ANCHOR_END: open

        // ANCHOR: load
        let skel = open
            .load()
            .map_err(|e| lesson.explain(Stage::Load, "loading the kprobe programs", e))?;
        // ANCHOR_END: load

        // ANCHOR: attach
        let progs = &skel.progs;
        let entry = progs
            .unlink_entry
            .attach_kprobe(false, lesson.function())
            .map_err(|e| lesson.explain(Stage::Attach, "attaching the kprobe", e))?;
        let exit = progs
            .unlink_exit
            .attach_kprobe(true, lesson.function())
            .map_err(|e| lesson.explain(Stage::Attach, "attaching the kretprobe", e))?;
        let _follow = lesson.follow_command(&progs.follow_fork, &progs.forget_exit)?;
        // ANCHOR_END: attach

        // ANCHOR: lost
        let bss = skel
            .maps
            .bss_data
            .as_ref()
            .context("the BPF object has no .bss")?;
        let lost_events = &bss.lost_events;
        let probes = [(&progs.unlink_entry, &entry), (&progs.unlink_exit, &exit)];
        // ANCHOR_END: lost
        if lesson.use_printk() {
            return lesson.watch_trace_pipe(&skel.maps.traced_tgids, lost_events, probes);
        }

        // ANCHOR: ring_buffer
        let output = lesson.output();
        let mut builder = RingBufferBuilder::new();
        builder
            .add(&skel.maps.events, |data: &[u8]| {
                // The bytes are one `struct unlink_event` (common/bpf/unlink_event.h).
                match plain::from_bytes::<RawEvent>(data) {
                    Ok(raw) => output.event(&Event::from(raw)),
                    Err(_) => output.malformed(data.len()),
                }
                0
            })
            .context("setting up the ring buffer")?;
        let ring = builder.build().context("setting up the ring buffer")?;
        // ANCHOR_END: ring_buffer

        // ANCHOR: poll
        // Trace --pid, say what is attached, start `-- COMMAND`.
        let mut watch = lesson.begin(&skel.maps.traced_tgids)?;
        while watch.keep_going(&output)? {
            match ring.poll(TICK) {
                Err(err) if !interrupted(&err) => {
                    return Err(err).context("reading the ring buffer")
                }
                _ => {}
            }
            // Records sent without a wakeup (see wakeup_flag in unlink.bpf.h).
            let _ = ring.consume();
            output.flush();
        }
        // Records already in the buffer (say, the command's last unlinks) still count.
        let _ = ring.consume();
        drop(ring);
        // ANCHOR: returns_missed
        // Entries still parked never saw their return (see returns_missed in the BPF side).
        let parked = skel.maps.in_flight.keys().count() as u64;
        let returns_missed = read_counter(&bss.returns_missed) + parked;
        // ANCHOR_END: returns_missed
        lesson.finish(watch, output, lost_events, probes, Some(returns_missed))
        // ANCHOR_END: poll
    })
}
