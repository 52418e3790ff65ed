//! The one catalogue of how the lessons fail: errno -> cause -> next step.
//! The lessons' error lines, unlink-doctor's verdicts and `explain`, and the
//! book's troubleshooting page all read it, so they cannot disagree.

use std::fmt;
use std::str::FromStr;

use nix::errno::Errno;
use serde::{Serialize, Serializer};

use crate::probe::Probe;

/// A catalogue entry's name, checked by the compiler. Its string form ([`FailureId::as_str`])
/// is what the JSON, `explain` and the book's troubleshooting anchors show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureId {
    NotPrivileged,
    ContainerRestricted,
    TracingRefused,
    MemlockLimit,
    Lockdown,
    NoKprobes,
    FunctionNotFound,
    NoBtf,
    NotTraceable,
    VerifierRejected,
    RingBufferTooBig,
    FentryNotSupported,
    KprobeBusy,
    FentryBusy,
    TrampolineFull,
    KernelTooOld,
    NoBpfSyscall,
    TracefsUnavailable,
    Unknown,
}

impl FailureId {
    /// How many there are: `Unknown` stays last.
    pub const COUNT: usize = FailureId::Unknown as usize + 1;

    /// The stable id: `no-kprobes`.
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureId::NotPrivileged => "not-privileged",
            FailureId::ContainerRestricted => "container-restricted",
            FailureId::TracingRefused => "tracing-refused",
            FailureId::MemlockLimit => "memlock-limit",
            FailureId::Lockdown => "lockdown",
            FailureId::NoKprobes => "no-kprobes",
            FailureId::FunctionNotFound => "function-not-found",
            FailureId::NoBtf => "no-btf",
            FailureId::NotTraceable => "not-traceable",
            FailureId::VerifierRejected => "verifier-rejected",
            FailureId::RingBufferTooBig => "ring-buffer-too-big",
            FailureId::FentryNotSupported => "fentry-not-supported",
            FailureId::KprobeBusy => "kprobe-busy",
            FailureId::FentryBusy => "fentry-busy",
            FailureId::TrampolineFull => "trampoline-full",
            FailureId::KernelTooOld => "kernel-too-old",
            FailureId::NoBpfSyscall => "no-bpf-syscall",
            FailureId::TracefsUnavailable => "tracefs-unavailable",
            FailureId::Unknown => "unknown",
        }
    }

    /// The catalogue entry.
    pub fn failure(self) -> &'static Failure {
        &CATALOGUE[self as usize]
    }

    /// Every id, in the catalogue's order.
    pub fn all() -> impl Iterator<Item = FailureId> {
        CATALOGUE.iter().map(|failure| failure.id)
    }
}

impl fmt::Display for FailureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FailureId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl FromStr for FailureId {
    type Err = String;

    /// The id a person typed: an unknown one gets a one-line error listing the known ones.
    fn from_str(id: &str) -> Result<FailureId, String> {
        FailureId::all()
            .find(|known| known.as_str() == id)
            .ok_or_else(|| {
                let known: Vec<&str> = FailureId::all().map(FailureId::as_str).collect();
                format!(
                    "no failure {id:?} in the catalogue; the known ones are: {}",
                    known.join(", ")
                )
            })
    }
}

/// One known way to fail. `{lesson}` and `{other}` in `fix` name the lessons.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Stable id; also the anchor of its entry in the book's troubleshooting page.
    pub id: FailureId,
    /// The errno users see, when the failure has one.
    pub errno: Option<i32>,
    pub title: &'static str,
    pub cause: &'static str,
    /// How to tell beforehand (what unlink-doctor checks).
    pub detect: &'static str,
    pub fix: &'static str,
}

pub(crate) const EPERM: i32 = Errno::EPERM as i32;
pub(crate) const ENOENT: i32 = Errno::ENOENT as i32;
pub(crate) const ESRCH: i32 = Errno::ESRCH as i32;
pub(crate) const EINVAL: i32 = Errno::EINVAL as i32;
pub(crate) const EBUSY: i32 = Errno::EBUSY as i32;
pub(crate) const E2BIG: i32 = Errno::E2BIG as i32;
pub(crate) const ENOSYS: i32 = Errno::ENOSYS as i32;
pub(crate) const EACCES: i32 = Errno::EACCES as i32;
pub(crate) const ENOMEM: i32 = Errno::ENOMEM as i32;
/// The kernel-internal ENOTSUPP, not user space's ENOTSUP (95).
pub const ENOTSUPP: i32 = 524;

/// In [`FailureId`] order, which the check below holds the compiler to.
pub const CATALOGUE: [Failure; FailureId::COUNT] = [
    Failure {
        id: FailureId::NotPrivileged,
        errno: Some(EPERM),
        title: "Not privileged",
        cause: "loading tracing programs needs root, or CAP_BPF + CAP_PERFMON (CAP_SYS_ADMIN before Linux 5.8), and this process has neither",
        detect: "euid and CapEff in /proc/self/status",
        fix: "run it as root: `sudo target/debug/{lesson}` (or `cargo xtask try {lesson}`)",
    },
    Failure {
        id: FailureId::ContainerRestricted,
        errno: Some(EPERM),
        title: "Root in a container or user namespace without BPF rights",
        cause: "this process is root, but in a container or user namespace that lacks CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN) in the host's namespace, or whose seccomp profile blocks bpf(); sudo cannot help",
        detect: "euid 0 without the capabilities in CapEff, a non-identity /proc/self/uid_map, or Seccomp: 2 in /proc/self/status",
        fix: "run {lesson} on the host, or start the container with `--privileged` (or `--cap-add BPF --cap-add PERFMON --security-opt seccomp=unconfined`), or use a VM: `cargo xtask vm -- target/debug/{lesson}`",
    },
    Failure {
        id: FailureId::TracingRefused,
        errno: Some(EPERM),
        title: "Kernel refuses tracing programs although you are privileged",
        cause: "this kernel rejects every BPF tracing program (fentry, fexit, lsm) at load, even for root with CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN; libbpf's hint to raise `ulimit -l` is wrong here",
        detect: "a real load attempt; `bpftool feature probe kernel` says program_type tracing is NOT available",
        fix: "run {other} if `sudo unlink-doctor` says it is ready, or run this lesson in a VM: `cargo xtask vm -- target/debug/{lesson}`",
    },
    Failure {
        id: FailureId::MemlockLimit,
        errno: Some(EPERM),
        title: "Locked-memory limit too low (kernels before 5.11)",
        cause: "kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK, and the limit is too small for the lesson's maps",
        detect: "kernel version below 5.11 and `ulimit -l` below a few MiB",
        fix: "raise the limit (`ulimit -l unlimited` as root) and run {lesson} again",
    },
    Failure {
        id: FailureId::Lockdown,
        errno: Some(EPERM),
        title: "Kernel lockdown forbids reading kernel memory",
        cause: "the kernel is locked down in confidentiality mode (often with Secure Boot), which forbids BPF programs that read kernel memory",
        detect: "/sys/kernel/security/lockdown shows [confidentiality]",
        fix: "boot with lockdown=integrity or none, or run the lesson in a VM: `cargo xtask vm -- target/debug/{lesson}`",
    },
    Failure {
        id: FailureId::NoKprobes,
        errno: Some(ENOENT),
        title: "No kprobe support in this kernel",
        cause: "this kernel was built without CONFIG_KPROBES: there is no kprobe PMU (/sys/bus/event_source/devices/kprobe) and no kprobe_events file, so libbpf cannot create the probe",
        detect: "/sys/bus/event_source/devices/kprobe and tracefs kprobe_events are both missing",
        fix: "run {other} if `sudo unlink-doctor` says it is ready, or run this lesson in a VM: `cargo xtask vm -- target/debug/{lesson}`",
    },
    Failure {
        id: FailureId::FunctionNotFound,
        errno: Some(ENOENT),
        title: "The unlink function does not exist under that name",
        cause: "the kernel has no function by that name in kallsyms or BTF: it was renamed (do_unlinkat became filename_unlinkat in Linux 7.0), inlined, or left out of BTF",
        detect: "`grep unlinkat /proc/kallsyms` and the BTF lookup in unlink-doctor",
        fix: "drop --function so the lesson picks the name, or pass the name `grep unlinkat /proc/kallsyms` shows; `sudo unlink-doctor` checks both",
    },
    Failure {
        id: FailureId::NoBtf,
        errno: Some(ESRCH),
        title: "The kernel has no BTF",
        cause: "the kernel was built without CONFIG_DEBUG_INFO_BTF (no /sys/kernel/btf/vmlinux): fentry needs it to find the function, and both lessons need it for CO-RE",
        detect: "/sys/kernel/btf/vmlinux is missing",
        fix: "use a kernel with CONFIG_DEBUG_INFO_BTF=y (most distributions since 2020), or run the lesson in a VM: `cargo xtask vm -- target/debug/{lesson}`",
    },
    Failure {
        id: FailureId::NotTraceable,
        errno: Some(EINVAL),
        title: "The function cannot be probed",
        cause: "the function is marked notrace or is on the kprobe blacklist, so the kernel refuses a probe there",
        detect: "available_filter_functions and /sys/kernel/debug/kprobes/blacklist",
        fix: "run {other}, or check the function with `sudo unlink-doctor`",
    },
    Failure {
        id: FailureId::VerifierRejected,
        errno: Some(EACCES),
        title: "The verifier rejected the program",
        cause: "the BPF verifier refused the program; an fentry/fexit program reads its arguments with the types of the function's BTF prototype, so a --function whose arguments are not (int dfd, struct filename *name), such as vfs_unlink, is refused",
        detect: "the verifier's log, shown whole with -v, which names each argument's type: `func 'vfs_unlink' arg1 has btf_id 912 type STRUCT 'inode'`",
        fix: "drop --function so {lesson} picks do_unlinkat or filename_unlinkat, or name a function with the prototype (int dfd, struct filename *name); -v shows the verifier's whole log",
    },
    Failure {
        id: FailureId::RingBufferTooBig,
        errno: Some(ENOMEM),
        title: "No memory for the ring buffer",
        cause: "the kernel could not allocate the lesson's maps, and the ring buffer, sized by --ring-buffer-kib (2048 KiB unless given), is by far the largest",
        detect: "free memory (`free -m`, a memory cgroup's limit) against --ring-buffer-kib",
        fix: "give a smaller --ring-buffer-kib (the default, 2048, is enough for thousands of unlinks a second), or free memory",
    },
    Failure {
        id: FailureId::FentryNotSupported,
        errno: Some(ENOTSUPP),
        title: "fentry/fexit not supported here (-524 ENOTSUPP)",
        cause: "the kernel cannot build a BPF trampoline for this function: fentry needs x86_64 >= 5.5, or arm64 >= 6.4 (6.0-6.3 lack ftrace direct calls), riscv/s390 >= 6.3, and CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS",
        detect: "architecture, kernel version and config, and only for certain a real attach: load-only feature probes say yes here",
        fix: "run {other} (kprobes work on these kernels), or run this lesson in a VM: `cargo xtask vm -- target/debug/{lesson}`",
    },
    Failure {
        id: FailureId::KprobeBusy,
        errno: Some(EBUSY),
        title: "The function is busy (kprobe)",
        cause: "another user of ftrace owns the function in a way that excludes a kprobe, usually a livepatch",
        detect: "/sys/kernel/livepatch",
        fix: "run {other}, or retry once the livepatch is gone",
    },
    Failure {
        id: FailureId::FentryBusy,
        errno: Some(EBUSY),
        title: "No ftrace to attach through (fentry)",
        cause: "the kernel lacks CONFIG_FUNCTION_TRACER or CONFIG_DYNAMIC_FTRACE, or another ftrace direct user holds the function",
        detect: "the kernel config and tracefs available_tracers",
        fix: "run {other}, or run this lesson in a VM: `cargo xtask vm -- target/debug/{lesson}`",
    },
    Failure {
        id: FailureId::TrampolineFull,
        errno: Some(E2BIG),
        title: "Too many programs on one trampoline",
        cause: "the function's BPF trampoline already holds the maximum number of fentry/fexit programs",
        detect: "`bpftool link list`",
        fix: "detach other tracers on the function (`bpftool link list`), then run {lesson} again",
    },
    Failure {
        id: FailureId::KernelTooOld,
        errno: Some(EINVAL),
        title: "Kernel too old for the lessons",
        cause: "both lessons need Linux 5.8 or newer (BPF ring buffer, bpf_probe_read_kernel_str); older kernels reject the ring buffer map or the helpers",
        detect: "the kernel version (`uname -r`)",
        fix: "use a newer kernel, or run {lesson} in a VM: `cargo xtask vm -- target/debug/{lesson}`",
    },
    Failure {
        id: FailureId::NoBpfSyscall,
        errno: Some(ENOSYS),
        title: "No bpf() system call",
        cause: "bpf() is unavailable: the kernel lacks CONFIG_BPF_SYSCALL, or a seccomp filter (container, gVisor) blocks it",
        detect: "the kernel config and Seccomp in /proc/self/status",
        fix: "run the lesson on the host, not in the container, or in a VM: `cargo xtask vm -- target/debug/{lesson}`",
    },
    Failure {
        id: FailureId::TracefsUnavailable,
        errno: None,
        title: "No trace_pipe to read (--printk)",
        cause: "tracefs is not mounted (neither /sys/kernel/tracing nor /sys/kernel/debug/tracing has trace_pipe) or is unreadable, so bpf_printk output cannot be read",
        detect: "/proc/self/mountinfo and the trace_pipe file",
        fix: "mount it: `sudo mount -t tracefs nodev /sys/kernel/tracing`, or drop --printk to use the ring buffer",
    },
    Failure {
        id: FailureId::Unknown,
        errno: None,
        title: "A failure not in this catalogue",
        cause: "the kernel refused for a reason this tutorial does not know yet",
        detect: "`sudo unlink-doctor` and the libbpf log (-v)",
        fix: "run with -v for libbpf's log and `sudo unlink-doctor --report`, and include both in a bug report",
    },
];

// Entry i has the id whose number is i, so FailureId::failure cannot pick another entry.
const _: () = {
    let mut i = 0;
    while i < CATALOGUE.len() {
        assert!(
            CATALOGUE[i].id as usize == i,
            "CATALOGUE is not in FailureId order"
        );
        i += 1;
    }
};

impl Failure {
    /// The next step with the lesson names filled in.
    pub fn fix_for(&self, probe: Probe) -> String {
        self.fix
            .replace("{lesson}", probe.lesson())
            .replace("{other}", probe.other().lesson())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_back_and_fixes_name_a_next_step() {
        for failure in &CATALOGUE {
            assert_eq!(failure.id.as_str().parse(), Ok(failure.id));
            assert!(!failure.fix.is_empty() && !failure.cause.is_empty());
        }
        assert_eq!("no-kprobes".parse(), Ok(FailureId::NoKprobes));
        let err = "no-kprobe".parse::<FailureId>().unwrap_err();
        assert!(
            err.starts_with(
                "no failure \"no-kprobe\" in the catalogue; the known ones are: not-privileged, "
            ) && err.ends_with(", unknown")
                && !err.contains('\n'),
            "{err}"
        );
    }
}
