//! Lesson 03: print every unlink, seen by fentry and fexit programs on the
//! kernel's unlink function. The BPF side is in src/bpf/unlink_fentry.bpf.c;
//! the plumbing shared with lesson 02 is in unlink-common.

use std::mem::MaybeUninit;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use libbpf_rs::skel::{OpenSkel as _, SkelBuilder as _};
use unlink_common::{Lesson, LessonArgs, Probe, Stage};

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

        // ANCHOR: watch
        let lost_events = &skel
            .maps
            .bss_data
            .as_ref()
            .context("the BPF object has no .bss")?
            .lost_events;
        let probes = [(&progs.unlink_entry, &entry), (&progs.unlink_exit, &exit)];
        lesson.watch(
            &skel.maps.events,
            &skel.maps.traced_tgids,
            lost_events,
            probes,
        )
        // ANCHOR_END: watch
    })
}
