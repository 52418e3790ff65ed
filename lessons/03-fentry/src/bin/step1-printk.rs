//! Lesson 03, step 1: the chapter as written. fentry and fexit programs on
//! the kernel's unlink function call bpf_printk; we print what they write to
//! the kernel's trace_pipe. Run it, then `touch f && rm f` in another terminal.
// ANCHOR: all
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::mem::MaybeUninit;

use anyhow::{Context, Result};
use libbpf_rs::btf::{types::Func, Btf};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};

// ANCHOR: skeleton
// build.rs compiled src/bpf/fentry_printk.bpf.c and generated this Rust wrapper for it.
mod fentry_printk {
    include!(concat!(env!("OUT_DIR"), "/fentry_printk.skel.rs"));
}
use fentry_printk::FentryPrintkSkelBuilder;
// ANCHOR_END: skeleton

fn main() -> Result<()> {
    let function = unlink_function()?;

    // ANCHOR: open_load_attach
    let mut object = MaybeUninit::uninit();
    let mut open = FentryPrintkSkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;
    // fentry/fexit are bound to their function when they load, not when they attach.
    for prog in [
        &mut open.progs.do_unlinkat,
        &mut open.progs.do_unlinkat_exit,
    ] {
        prog.set_attach_target(0, Some(function.to_string()))
            .context("choosing the function to trace")?;
    }
    let mut skel = open.load().context("loading the BPF programs")?;
    skel.attach()
        .with_context(|| format!("attaching fentry and fexit to {function}"))?;
    // ANCHOR_END: open_load_attach
    eprintln!("attached to {function}; printing trace_pipe, Ctrl-C to stop");

    // ANCHOR: trace_pipe
    // Every bpf_printk on this machine ends up here; reading a line consumes it.
    let pipe = File::open("/sys/kernel/tracing/trace_pipe")
        .or_else(|_| File::open("/sys/kernel/debug/tracing/trace_pipe"))
        .context(
            "opening trace_pipe: is tracefs mounted? (mount -t tracefs none /sys/kernel/tracing)",
        )?;
    for line in BufReader::new(pipe).split(b'\n') {
        let line = line.context("reading trace_pipe")?;
        // The message's own "\n" ends in an empty line: skip those. File
        // names are bytes, not always UTF-8.
        if !line.is_empty() {
            println!("{}", String::from_utf8_lossy(&line));
        }
    }
    Ok(())
    // ANCHOR_END: trace_pipe
}

// ANCHOR: unlink_function
/// Linux 7.0 renamed do_unlinkat to filename_unlinkat, with the same
/// arguments. The kernel's type information (BTF) lists its functions: take
/// the name this kernel has.
fn unlink_function() -> Result<&'static str> {
    let btf = Btf::from_vmlinux().context("reading the kernel's BTF")?;
    ["do_unlinkat", "filename_unlinkat"]
        .into_iter()
        .find(|name| btf.type_by_name::<Func>(name).is_some())
        .context("neither do_unlinkat nor filename_unlinkat is in the kernel's BTF")
}
// ANCHOR_END: unlink_function
// ANCHOR_END: all
