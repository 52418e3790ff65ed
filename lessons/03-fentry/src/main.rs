//! Lesson 03: print every unlink, seen by fentry and fexit programs on the
//! kernel's unlink function. The BPF side is in src/bpf/unlink_fentry.bpf.c;
//! This is step 3, the complete tool; steps 1 and 2 are in src/bin/. The
//! plumbing shared with lesson 02 is in unlink-common.

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
mod unlink_fentry {
    include!(concat!(env!("OUT_DIR"), "/unlink_fentry.skel.rs"));
}
use unlink_fentry::UnlinkFentrySkelBuilder;
// ANCHOR_END: skeleton

/// Watch the kernel's unlink function with fentry and fexit.
#[derive(Parser)]
#[command(name = "lesson-03", version)]
struct Cli {
    #[command(flatten)]
    lesson: LessonArgs,
}

fn main() -> ExitCode {
    unlink_common::run(|| {
        // ANCHOR: start
        let lesson = Lesson::start(Cli::parse().lesson, Probe::Fentry)?;
        // ANCHOR_END: start

        // ANCHOR: open
        let mut object = MaybeUninit::uninit();
        let mut open = UnlinkFentrySkelBuilder::default()
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

        // ANCHOR: target
        // fentry/fexit are bound to their function at load time, through its BTF id.
        for prog in [&mut open.progs.unlink_entry, &mut open.progs.unlink_exit] {
            prog.set_attach_target(0, Some(lesson.function().to_string()))
                .map_err(|e| lesson.explain(Stage::Load, "choosing the fentry/fexit target", e))?;
        }
        // ANCHOR_END: target

        // ANCHOR: load
        let skel = open
            .load()
            .map_err(|e| lesson.explain(Stage::Load, "loading the fentry/fexit programs", e))?;
        // ANCHOR_END: load

        // ANCHOR: attach
        let progs = &skel.progs;
        let entry = progs
            .unlink_entry
            .attach()
            .map_err(|e| lesson.explain(Stage::Attach, "attaching fentry", e))?;
        let exit = progs
            .unlink_exit
            .attach()
            .map_err(|e| lesson.explain(Stage::Attach, "attaching fexit", e))?;
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
        // ANCHOR: exits_missed
        // Entries still parked never saw their fexit (see exits_missed in the BPF side).
        let parked = skel.maps.entered_at.keys().count() as u64;
        let exits_missed = read_counter(&bss.exits_missed) + parked;
        // ANCHOR_END: exits_missed
        lesson.finish(watch, output, lost_events, probes, Some(exits_missed))
        // ANCHOR_END: poll
    })
}
