//! Lesson 02, step 2: the same kprobe and kretprobe, but each unlink reaches
//! us as a record in a BPF ring buffer, decoded into the type the skeleton
//! generated from `struct event` in src/bpf/kprobe_ringbuf.bpf.c.
use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::time::Duration;

use anyhow::{Context, Result};
use libbpf_rs::btf::{types::Func, Btf};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::RingBufferBuilder;

mod kprobe_ringbuf {
    include!(concat!(env!("OUT_DIR"), "/kprobe_ringbuf.skel.rs"));
}
use kprobe_ringbuf::{types::event, KprobeRingbufSkelBuilder};

// ANCHOR: plain
// SAFETY: `event` is plain old data (integers and byte arrays): any bytes are a valid value.
unsafe impl plain::Plain for event {}
// ANCHOR_END: plain

fn main() -> Result<()> {
    let function = unlink_function()?;
    let mut object = MaybeUninit::uninit();
    let open = KprobeRingbufSkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;
    let skel = open.load().context("loading the BPF programs")?;
    let _entry = (skel.progs.do_unlinkat)
        .attach_kprobe(false, function)
        .with_context(|| format!("attaching the kprobe to {function}"))?;
    let _exit = (skel.progs.do_unlinkat_exit)
        .attach_kprobe(true, function)
        .with_context(|| format!("attaching the kretprobe to {function}"))?;
    eprintln!("attached to {function}; Ctrl-C to stop");

    // ANCHOR: ring_buffer
    // The callback runs once per record, inside poll(), on this thread.
    let mut builder = RingBufferBuilder::new();
    builder
        .add(&skel.maps.events, print_event)
        .context("setting up the ring buffer")?;
    let ring = builder.build().context("setting up the ring buffer")?;
    // ANCHOR_END: ring_buffer

    // ANCHOR: poll
    println!("{:<7} {:<16} {:>4} FILENAME", "PID", "COMM", "RET");
    loop {
        // Sleeps until the kernel wakes us (new records) or 100 ms pass.
        ring.poll(Duration::from_millis(100))
            .context("reading the ring buffer")?;
    }
    // ANCHOR_END: poll
}

// ANCHOR: decode
/// Decode one record: the bytes are a `struct event`, laid out as the C side wrote it.
fn print_event(data: &[u8]) -> i32 {
    let Ok(event) = plain::from_bytes::<event>(data) else {
        eprintln!("a record of {} bytes is not a struct event", data.len());
        return 0;
    };
    let text = |bytes: &[u8]| {
        let until_nul = CStr::from_bytes_until_nul(bytes).map_or(bytes, CStr::to_bytes);
        String::from_utf8_lossy(until_nul).into_owned()
    };
    println!(
        "{:<7} {:<16} {:>4} {}",
        event.pid,
        text(&event.comm),
        event.ret,
        text(&event.filename)
    );
    0 // a non-zero return would stop poll() with that value
}
// ANCHOR_END: decode

/// As in step 1: do_unlinkat, or filename_unlinkat since Linux 7.0.
fn unlink_function() -> Result<&'static str> {
    let btf = Btf::from_vmlinux().context("reading the kernel's BTF")?;
    ["do_unlinkat", "filename_unlinkat"]
        .into_iter()
        .find(|name| btf.type_by_name::<Func>(name).is_some())
        .context("neither do_unlinkat nor filename_unlinkat is in the kernel's BTF")
}
