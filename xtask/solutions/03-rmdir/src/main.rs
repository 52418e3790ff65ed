//! An exercise starting point: lesson 03's step 2 (fentry and fexit, one
//! record per unlink through a ring buffer). Read the task in the book,
//! change this crate, then: `cargo xtask exercise check 03-rmdir`
//! (`cargo xtask exercise hint 03-rmdir` when stuck).

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use libbpf_rs::btf::{types::Func, Btf};
use libbpf_rs::skel::{OpenSkel as _, SkelBuilder as _};
use libbpf_rs::{ErrorKind, PrintLevel, RingBufferBuilder};

mod unlink {
    include!(concat!(env!("OUT_DIR"), "/unlink.skel.rs"));
}
use unlink::{types, UnlinkSkelBuilder};

// SAFETY: the record is integers and byte arrays: any bytes are a valid value.
unsafe impl plain::Plain for types::event {}

/// Print every unlink and rmdir: pid, command, return value, time taken and name.
#[derive(Parser)]
struct Cli {
    /// Show libbpf's log, with the verifier's when a program is rejected
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.verbose {
        libbpf_rs::set_print(Some((PrintLevel::Debug, |_, message| eprint!("{message}"))));
    }
    let function = kernel_function(&["filename_unlinkat", "do_unlinkat"])?;
    let rmdir_function = kernel_function(&["filename_rmdir", "do_rmdir"])?;

    let mut object = MaybeUninit::uninit();
    let mut open = UnlinkSkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;
    // fentry and fexit name their function before load: the verifier checks the
    // programs against its BTF.
    for prog in [&mut open.progs.unlink_entry, &mut open.progs.unlink_exit] {
        prog.set_attach_target(0, Some(function.to_string()))
            .context("setting the function to trace")?;
    }
    for prog in [&mut open.progs.rmdir_entry, &mut open.progs.rmdir_exit] {
        prog.set_attach_target(0, Some(rmdir_function.to_string()))
            .context("setting the rmdir function to trace")?;
    }
    let skel = open
        .load()
        .context("loading the BPF programs (-v shows the verifier's log)")?;
    let _entry = skel
        .progs
        .unlink_entry
        .attach()
        .context("attaching fentry")?;
    let _exit = skel.progs.unlink_exit.attach().context("attaching fexit")?;
    let _rmdir_entry = skel
        .progs
        .rmdir_entry
        .attach()
        .context("attaching fentry to rmdir")?;
    let _rmdir_exit = skel
        .progs
        .rmdir_exit
        .attach()
        .context("attaching fexit to rmdir")?;

    let mut builder = RingBufferBuilder::new();
    builder.add(&skel.maps.events, print_event)?;
    let ring_buffer = builder.build()?;

    let running = Arc::new(AtomicBool::new(true));
    let stop = running.clone();
    ctrlc::set_handler(move || stop.store(false, Ordering::SeqCst))?;
    eprintln!("Watching {function} and {rmdir_function}; Ctrl-C to stop.");
    while running.load(Ordering::SeqCst) {
        match ring_buffer.poll(Duration::from_millis(100)) {
            Err(err) if err.kind() != ErrorKind::Interrupted => return Err(err.into()),
            _ => {}
        }
    }
    // Records sent after the last poll are still in the buffer.
    ring_buffer.consume()?;
    Ok(())
}

/// The ring buffer's callback: one record, decoded into the skeleton's type.
fn print_event(data: &[u8]) -> i32 {
    let mut event = types::event::default();
    if plain::copy_from_bytes(&mut event, data).is_err() {
        eprintln!("a record of {} bytes is too short", data.len());
        return 1;
    }
    println!(
        "{} pid={} comm={} ret={} latency_ns={} name={}",
        if event.op == 1 { "rmdir" } else { "unlink" },
        event.pid,
        text(&event.comm),
        event.ret,
        event.latency_ns,
        text(&event.name)
    );
    0
}

/// A NUL-terminated C string from the kernel (BPF's `char` is signed), for printing.
fn text(chars: &[i8]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The first of `names` this kernel has (Linux 7.0 renamed do_unlinkat).
fn kernel_function(names: &[&'static str]) -> Result<&'static str> {
    let btf = Btf::from_vmlinux().context("reading the kernel's BTF (/sys/kernel/btf/vmlinux)")?;
    names
        .iter()
        .copied()
        .find(|name| btf.type_by_name::<Func>(name).is_some())
        .with_context(|| format!("this kernel has none of {names:?}"))
}
