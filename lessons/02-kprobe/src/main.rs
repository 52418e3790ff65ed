//! Lesson 02: print every unlink, seen by a kprobe on entry and a kretprobe on
//! return of the kernel's unlink function. The BPF side is in
//! src/bpf/unlink_kprobe.bpf.c; the plumbing shared with lesson 03 is in
//! unlink-common.

use std::mem::MaybeUninit;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use libbpf_rs::skel::{OpenSkel as _, SkelBuilder as _};
use unlink_common::{Lesson, LessonArgs, Probe, Stage};

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
