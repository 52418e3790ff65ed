//! How many host threads TCG may use. Measured on 2026-12-02: boot, then 8
//! kprobe attach/detach cycles under unlink load, 2 vCPUs, debian-6.12 and
//! debian-7.2, about 62 runs per kernel and setup:
//! - Debian's QEMU 7.2, thread=multi: 12 of 125 runs failed (int3 oopses, and
//!   NULL calls from __x64_sys_unlink): a vCPU ran kernel text that another
//!   vCPU was patching.
//! - QEMU 10.0 (bookworm-backports), thread=multi: 0 of 124.
//! - QEMU 7.2, thread=single: 0 of 124, booting as fast, but attach/detach
//!   (which waits for the other vCPU) slower.
//!
//! So one thread per vCPU only where QEMU is new enough.

use std::ffi::OsStr;
use std::process::Command;

/// The first QEMU major version measured safe with thread=multi.
const FIRST_SAFE_MTTCG: u32 = 10;

/// `-accel` for TCG on this QEMU binary.
pub fn accel(qemu: &OsStr) -> &'static str {
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
        assert_eq!(accel(OsStr::new("/nonexistent/qemu")), "tcg,thread=single");
    }
}
