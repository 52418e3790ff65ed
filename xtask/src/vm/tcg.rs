//! How many host threads TCG may use. Measured with `cargo xtask vm-soak`
//! (boot, then 8 enable/disable cycles of a tracefs kprobe on the unlink path
//! while a loop unlinks files; 2 vCPUs; setups in turn on a shared 2-core
//! host), 2026-12-02 (same guest workload from scripts) and 2026-12-03:
//! - Debian's QEMU 7.2, thread=multi: 24 of 325 runs failed (debian-6.12
//!   14/162, debian-7.2 10/163): int3 oopses whose code bytes are already
//!   the patched nop (sched_clock_cpu at boot, __schedule, try_to_wake_up,
//!   wake_up_new_task), and NULL calls from __x64_sys_unlink: a vCPU ran
//!   kernel text that another vCPU was patching. None in the first 47 runs
//!   of 2026-12-03, at host load 5-17, when its vCPU threads rarely ran at
//!   once; then 12 of 153.
//! - QEMU 10.0 (bookworm-backports), thread=multi: 0 of 318.
//! - QEMU 7.2, thread=single: 0 of 302 on 6.12 and 7.2, and 0 of 46 boots of
//!   5.10 and 6.1; booting as fast, but attach/detach (which waits for the
//!   other vCPU) slower.
//!
//! So one thread per vCPU only where QEMU is new enough.

use std::ffi::OsStr;
use std::process::Command;

/// The first QEMU major version measured safe with thread=multi.
const FIRST_SAFE_MTTCG: u32 = 10;

/// TCG's host threads: one per vCPU (multi), one for all (single), or what
/// this module measured safe for the QEMU at hand (auto).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Threads {
    #[default]
    Auto,
    Single,
    Multi,
}

/// `-accel` for TCG on this QEMU binary.
pub fn accel(qemu: &OsStr, threads: Threads) -> &'static str {
    match threads {
        Threads::Single => return "tcg,thread=single",
        Threads::Multi => return "tcg,thread=multi",
        Threads::Auto => {}
    }
    let version = Command::new(qemu).arg("--version").output();
    let major = version
        .ok()
        .and_then(|output| parse_major(&String::from_utf8_lossy(&output.stdout)));
    accel_for(major)
}

fn accel_for(major: Option<u32>) -> &'static str {
    if major.is_some_and(|major| major >= FIRST_SAFE_MTTCG) {
        "tcg,thread=multi"
    } else {
        "tcg,thread=single"
    }
}

/// "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18+b3)" is 7.
fn parse_major(version: &str) -> Option<u32> {
    let rest = version.split("version ").nth(1)?;
    rest.split('.').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_new_enough_qemu_gets_a_thread_per_vcpu() {
        let debian_12 = "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n";
        let backports = "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\n";
        assert_eq!(parse_major(debian_12), Some(7));
        assert_eq!(parse_major(backports), Some(10));
        assert_eq!(accel_for(parse_major(debian_12)), "tcg,thread=single");
        assert_eq!(accel_for(parse_major(backports)), "tcg,thread=multi");
        assert_eq!(parse_major("garbage"), None);
        // a QEMU that cannot be asked is treated as an old one
        assert_eq!(
            accel(OsStr::new("/nonexistent/qemu"), Threads::Auto),
            "tcg,thread=single"
        );
        assert_eq!(
            accel(OsStr::new("/nonexistent/qemu"), Threads::Multi),
            "tcg,thread=multi"
        );
    }
}
