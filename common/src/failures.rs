//! The one catalogue of how the lessons fail: errno -> cause -> next step.
//! The lessons' error lines, unlink-doctor's verdicts and `explain`, and the
//! book's troubleshooting page all read it, so they cannot disagree.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::errno;

/// Which pair of programs a lesson uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// Lesson 02: kprobe + kretprobe.
    Kprobe,
    /// Lesson 03: fentry + fexit.
    Fentry,
}

impl Probe {
    pub fn lesson(self) -> &'static str {
        match self {
            Probe::Kprobe => "lesson-02",
            Probe::Fentry => "lesson-03",
        }
    }

    pub fn other(self) -> Probe {
        match self {
            Probe::Kprobe => Probe::Fentry,
            Probe::Fentry => Probe::Kprobe,
        }
    }

    /// `["kprobe", "kretprobe"]` or `["fentry", "fexit"]`.
    pub fn programs(self) -> [&'static str; 2] {
        match self {
            Probe::Kprobe => ["kprobe", "kretprobe"],
            Probe::Fentry => ["fentry", "fexit"],
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [entry, exit] = self.programs();
        write!(f, "{entry}/{exit}")
    }
}

/// Where in a lesson's life the kernel said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// BPF_PROG_LOAD: the verifier, BTF lookups, permission to load.
    Load,
    /// Creating the kprobe or trampoline link.
    Attach,
}

/// One known way to fail. `{lesson}` and `{other}` in `fix` name the lessons.
#[derive(Debug, Serialize)]
pub struct Failure {
    /// Stable id; also the anchor of its entry in the book's troubleshooting page.
    pub id: &'static str,
    /// The errno users see, when the failure has one.
    pub errno: Option<i32>,
    pub title: &'static str,
    pub cause: &'static str,
    /// How to tell beforehand (what unlink-doctor checks).
    pub detect: &'static str,
    pub fix: &'static str,
}

const EPERM: i32 = libc::EPERM;
const ENOENT: i32 = libc::ENOENT;
const ESRCH: i32 = libc::ESRCH;
const EINVAL: i32 = libc::EINVAL;
const EBUSY: i32 = libc::EBUSY;
const E2BIG: i32 = libc::E2BIG;
const ENOSYS: i32 = libc::ENOSYS;
/// The kernel-internal ENOTSUPP, not user space's ENOTSUP (95).
pub const ENOTSUPP: i32 = 524;

pub const CATALOGUE: &[Failure] = &[
    Failure {
        id: "not-privileged",
        errno: Some(EPERM),
        title: "Not privileged",
        cause: "loading tracing programs needs root, or CAP_BPF + CAP_PERFMON (CAP_SYS_ADMIN before Linux 5.8), and this process has neither",
        detect: "euid and CapEff in /proc/self/status",
        fix: "run it as root: `sudo target/debug/{lesson}` (or `cargo xtask try {lesson}`)",
    },
    Failure {
        id: "tracing-refused",
        errno: Some(EPERM),
        title: "Kernel refuses tracing programs although you are privileged",
        cause: "this kernel rejects every BPF tracing program (fentry, fexit, lsm) at load, even for root with CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN; libbpf's hint to raise `ulimit -l` is wrong here",
        detect: "a real load attempt; `bpftool feature probe kernel` says program_type tracing is NOT available",
        fix: "run {other} if `sudo unlink-doctor` says it is ready, or run this lesson in a VM: `cargo xtask vm -- target/debug/{lesson}`",
    },
    Failure {
        id: "memlock-limit",
        errno: Some(EPERM),
        title: "Locked-memory limit too low (kernels before 5.11)",
        cause: "kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK, and the limit is too small for the lesson's maps",
        detect: "kernel version below 5.11 and `ulimit -l` below a few MiB",
        fix: "raise the limit (`ulimit -l unlimited` as root) and run {lesson} again",
    },
    Failure {
        id: "lockdown",
        errno: Some(EPERM),
        title: "Kernel lockdown forbids reading kernel memory",
        cause: "the kernel is locked down in confidentiality mode (often with Secure Boot), which forbids BPF programs that read kernel memory",
        detect: "/sys/kernel/security/lockdown shows [confidentiality]",
        fix: "boot with lockdown=integrity or none, or run the lesson in a VM: `cargo xtask vm -- target/debug/{lesson}`",
    },
    Failure {
        id: "no-kprobes",
        errno: Some(ENOENT),
        title: "No kprobe support in this kernel",
        cause: "this kernel was built without CONFIG_KPROBES: there is no kprobe PMU (/sys/bus/event_source/devices/kprobe) and no kprobe_events file, so libbpf cannot create the probe",
        detect: "/sys/bus/event_source/devices/kprobe and tracefs kprobe_events are both missing",
        fix: "run {other} if `sudo unlink-doctor` says it is ready, or run this lesson in a VM: `cargo xtask vm -- target/debug/{lesson}`",
    },
    Failure {
        id: "function-not-found",
        errno: Some(ENOENT),
        title: "The unlink function does not exist under that name",
        cause: "the kernel has no function by that name in kallsyms or BTF: it was renamed (do_unlinkat became filename_unlinkat in Linux 7.0), inlined, or left out of BTF",
        detect: "`grep unlinkat /proc/kallsyms` and the BTF lookup in unlink-doctor",
        fix: "drop --function so the lesson picks the name, or pass the name `grep unlinkat /proc/kallsyms` shows; `sudo unlink-doctor` checks both",
    },
    Failure {
        id: "no-btf",
        errno: Some(ESRCH),
        title: "The kernel has no BTF",
        cause: "the kernel was built without CONFIG_DEBUG_INFO_BTF (no /sys/kernel/btf/vmlinux): fentry needs it to find the function, and both lessons need it for CO-RE",
        detect: "/sys/kernel/btf/vmlinux is missing",
        fix: "use a kernel with CONFIG_DEBUG_INFO_BTF=y (most distributions since 2020), or run the lesson in a VM: `cargo xtask vm -- target/debug/{lesson}`",
    },
    Failure {
        id: "not-traceable",
        errno: Some(EINVAL),
        title: "The function cannot be probed",
        cause: "the function is marked notrace or is on the kprobe blacklist, so the kernel refuses a probe there",
        detect: "available_filter_functions and /sys/kernel/debug/kprobes/blacklist",
        fix: "run {other}, or check the function with `sudo unlink-doctor`",
    },
    Failure {
        id: "fentry-not-supported",
        errno: Some(ENOTSUPP),
        title: "fentry/fexit not supported here (-524 ENOTSUPP)",
        cause: "the kernel cannot build a BPF trampoline for this function: fentry needs x86_64 >= 5.5, or arm64 >= 6.4 (6.0-6.3 lack ftrace direct calls), riscv/s390 >= 6.3, and CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS",
        detect: "architecture, kernel version and config, and only for certain a real attach: load-only feature probes say yes here",
        fix: "run {other} (kprobes work on these kernels), or run this lesson in a VM: `cargo xtask vm -- target/debug/{lesson}`",
    },
    Failure {
        id: "kprobe-busy",
        errno: Some(EBUSY),
        title: "The function is busy (kprobe)",
        cause: "another user of ftrace owns the function in a way that excludes a kprobe, usually a livepatch",
        detect: "/sys/kernel/livepatch",
        fix: "run {other}, or retry once the livepatch is gone",
    },
    Failure {
        id: "fentry-busy",
        errno: Some(EBUSY),
        title: "No ftrace to attach through (fentry)",
        cause: "the kernel lacks CONFIG_FUNCTION_TRACER or CONFIG_DYNAMIC_FTRACE, or another ftrace direct user holds the function",
        detect: "the kernel config and tracefs available_tracers",
        fix: "run {other}, or run this lesson in a VM: `cargo xtask vm -- target/debug/{lesson}`",
    },
    Failure {
        id: "trampoline-full",
        errno: Some(E2BIG),
        title: "Too many programs on one trampoline",
        cause: "the function's BPF trampoline already holds the maximum number of fentry/fexit programs",
        detect: "`bpftool link list`",
        fix: "detach other tracers on the function (`bpftool link list`), then run {lesson} again",
    },
    Failure {
        id: "no-bpf-syscall",
        errno: Some(ENOSYS),
        title: "No bpf() system call",
        cause: "bpf() is unavailable: the kernel lacks CONFIG_BPF_SYSCALL, or a seccomp filter (container, gVisor) blocks it",
        detect: "the kernel config and Seccomp in /proc/self/status",
        fix: "run the lesson on the host, not in the container, or in a VM: `cargo xtask vm -- target/debug/{lesson}`",
    },
    Failure {
        id: "tracefs-unavailable",
        errno: None,
        title: "No trace_pipe to read (--printk)",
        cause: "tracefs is not mounted (neither /sys/kernel/tracing nor /sys/kernel/debug/tracing has trace_pipe) or is unreadable, so bpf_printk output cannot be read",
        detect: "/proc/self/mountinfo and the trace_pipe file",
        fix: "mount it: `sudo mount -t tracefs nodev /sys/kernel/tracing`, or drop --printk to use the ring buffer",
    },
    Failure {
        id: "unknown",
        errno: None,
        title: "A failure not in this catalogue",
        cause: "the kernel refused for a reason this tutorial does not know yet",
        detect: "`sudo unlink-doctor` and the libbpf log (-v)",
        fix: "run with -v for libbpf's log and `sudo unlink-doctor --report`, and include both in a bug report",
    },
];

/// The catalogue entry with this id. Panics on an unknown id: ids are compile-time facts.
pub fn by_id(id: &str) -> &'static Failure {
    CATALOGUE.iter().find(|f| f.id == id).unwrap_or_else(|| panic!("no failure {id:?} in the catalogue"))
}

/// What is known about the system when a failure has to be explained.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub privileged: bool,
    pub kprobe_pmu: bool,
    pub kprobe_events: bool,
    pub btf: bool,
    /// (major, minor) of the running kernel.
    pub kernel_version: Option<(u32, u32)>,
    pub lockdown_confidentiality: bool,
}

impl Facts {
    /// Read the facts from the system files under `root` (normally `/`).
    pub fn read(root: &Path) -> Facts {
        let exists = |path: &str| root.join(path).exists();
        let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap_or_default();
        let status = read("proc/self/status");
        Facts {
            privileged: privileged_from_status(&status),
            kprobe_pmu: exists("sys/bus/event_source/devices/kprobe"),
            kprobe_events: exists("sys/kernel/tracing/kprobe_events")
                || exists("sys/kernel/debug/tracing/kprobe_events"),
            btf: exists("sys/kernel/btf/vmlinux"),
            kernel_version: parse_kernel_version(&read("proc/sys/kernel/osrelease")),
            lockdown_confidentiality: read("sys/kernel/security/lockdown").contains("[confidentiality]"),
        }
    }
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capabilities from a /proc/PID/status text, as a bit set.
pub fn effective_capabilities(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|line| line.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Root, or the capabilities that let a process load and attach tracing programs.
fn privileged_from_status(status: &str) -> bool {
    let has = |caps: u64, cap: u32| caps & (1 << cap) != 0;
    effective_capabilities(status)
        .is_some_and(|caps| has(caps, CAP_SYS_ADMIN) || (has(caps, CAP_BPF) && has(caps, CAP_PERFMON)))
}

/// `(major, minor)` from release strings like `6.1.0-27-amd64`, `7.0.0-rc1+` or `6.1`.
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The errno inside a libbpf-rs error, whose `{:#}` ends in `(os error N)`.
pub fn errno_of(error: &dyn fmt::Display) -> Option<i32> {
    let text = format!("{error:#}"); // the alternate form includes the source chain
    let start = text.rfind("(os error ")? + "(os error ".len();
    let digits: String = text[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// What went wrong, in the terms the catalogue needs.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub probe: Probe,
    pub stage: Stage,
    pub errno: Option<i32>,
    /// libbpf's log of the attempt: some causes are only visible there.
    pub libbpf_log: &'a str,
}

/// Pick the catalogue entry that explains `observed` on a system with `facts`.
pub fn classify(observed: &Observed<'_>, facts: &Facts) -> &'static Failure {
    let log = observed.libbpf_log;
    let id = match (observed.errno, observed.probe, observed.stage) {
        (_, _, _) if log.contains("kernel BTF is missing") || log.contains("failed to find valid kernel BTF") => {
            "no-btf"
        }
        (Some(ENOSYS), _, _) => "no-bpf-syscall",
        (Some(EPERM), _, _) if !facts.privileged => "not-privileged",
        (Some(EPERM | EINVAL), _, _) if facts.lockdown_confidentiality => "lockdown",
        (Some(EPERM), Probe::Fentry, Stage::Load) => "tracing-refused",
        (Some(EPERM), _, Stage::Load) if facts.kernel_version.is_some_and(|v| v < (5, 11)) => "memlock-limit",
        (Some(ENOENT), Probe::Kprobe, Stage::Attach) if !facts.kprobe_pmu && !facts.kprobe_events => "no-kprobes",
        (Some(ENOENT | ESRCH), _, _) if !facts.btf && observed.probe == Probe::Fentry => "no-btf",
        (Some(ENOENT | ESRCH), _, _) => "function-not-found",
        (Some(EINVAL), Probe::Kprobe, Stage::Attach) => "not-traceable",
        (Some(ENOTSUPP), _, _) => "fentry-not-supported",
        (Some(EBUSY), Probe::Kprobe, _) => "kprobe-busy",
        (Some(EBUSY), Probe::Fentry, _) => "fentry-busy",
        (Some(E2BIG), Probe::Fentry, Stage::Attach) => "trampoline-full",
        _ => "unknown",
    };
    by_id(id)
}

impl Failure {
    /// The next step with the lesson names filled in.
    pub fn fix_for(&self, probe: Probe) -> String {
        self.fix.replace("{lesson}", probe.lesson()).replace("{other}", probe.other().lesson())
    }
}

/// `ENOENT (-2)`, `ENOTSUPP (-524)`, or `error -999` for numbers without a name.
pub fn errno_label(errno: i32) -> String {
    match errno::name(errno) {
        Some(name) => format!("{name} (-{errno})"),
        None => format!("error -{errno}"),
    }
}

/// The one line a lesson prints when the kernel refuses: errno, cause, next step.
pub fn explain(what: &str, observed: &Observed<'_>, facts: &Facts) -> String {
    let failure = classify(observed, facts);
    let errno = observed.errno.map(errno_label).unwrap_or_else(|| "an error".to_string());
    let doctor = if failure.fix.contains("unlink-doctor") { "" } else { " (details: `sudo unlink-doctor`)" };
    format!("{what} failed with {errno}: {}. Next: {}{doctor}", failure.cause, failure.fix_for(observed.probe))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn this_machine() -> Facts {
        Facts {
            privileged: true,
            kprobe_pmu: false,
            kprobe_events: false,
            btf: true,
            kernel_version: Some((6, 18)),
            lockdown_confidentiality: false,
        }
    }

    fn observed(probe: Probe, stage: Stage, errno: i32) -> Observed<'static> {
        Observed { probe, stage, errno: Some(errno), libbpf_log: "" }
    }

    #[test]
    fn this_machines_failures_are_named_right() {
        let facts = this_machine();
        assert_eq!(classify(&observed(Probe::Kprobe, Stage::Attach, ENOENT), &facts).id, "no-kprobes");
        assert_eq!(classify(&observed(Probe::Fentry, Stage::Load, EPERM), &facts).id, "tracing-refused");
    }

    #[test]
    fn privileges_come_before_kernel_policy() {
        let facts = Facts { privileged: false, ..this_machine() };
        assert_eq!(classify(&observed(Probe::Fentry, Stage::Load, EPERM), &facts).id, "not-privileged");
        let old = Facts { kernel_version: Some((5, 10)), ..this_machine() };
        assert_eq!(classify(&observed(Probe::Kprobe, Stage::Load, EPERM), &old).id, "memlock-limit");
    }

    #[test]
    fn missing_functions_and_btf() {
        let with_kprobes = Facts { kprobe_pmu: true, ..this_machine() };
        assert_eq!(classify(&observed(Probe::Kprobe, Stage::Attach, ENOENT), &with_kprobes).id, "function-not-found");
        assert_eq!(classify(&observed(Probe::Fentry, Stage::Load, ESRCH), &with_kprobes).id, "function-not-found");
        let no_btf = Facts { btf: false, ..with_kprobes };
        assert_eq!(classify(&observed(Probe::Fentry, Stage::Load, ESRCH), &no_btf).id, "no-btf");
        let log = Observed { libbpf_log: "libbpf: kernel BTF is missing at '/sys/kernel/btf/vmlinux'", ..observed(Probe::Kprobe, Stage::Load, ESRCH) };
        assert_eq!(classify(&log, &no_btf).id, "no-btf");
    }

    #[test]
    fn attach_errors() {
        let facts = Facts { kprobe_pmu: true, ..this_machine() };
        assert_eq!(classify(&observed(Probe::Fentry, Stage::Attach, ENOTSUPP), &facts).id, "fentry-not-supported");
        assert_eq!(classify(&observed(Probe::Kprobe, Stage::Attach, EINVAL), &facts).id, "not-traceable");
        assert_eq!(classify(&observed(Probe::Kprobe, Stage::Attach, EBUSY), &facts).id, "kprobe-busy");
        assert_eq!(classify(&observed(Probe::Fentry, Stage::Attach, EBUSY), &facts).id, "fentry-busy");
        assert_eq!(classify(&observed(Probe::Fentry, Stage::Attach, E2BIG), &facts).id, "trampoline-full");
        assert_eq!(classify(&observed(Probe::Fentry, Stage::Load, ENOSYS), &facts).id, "no-bpf-syscall");
        assert_eq!(classify(&observed(Probe::Fentry, Stage::Load, 12), &facts).id, "unknown");
        let locked = Facts { lockdown_confidentiality: true, ..facts };
        assert_eq!(classify(&observed(Probe::Kprobe, Stage::Load, EINVAL), &locked).id, "lockdown");
    }

    #[test]
    fn explanations_name_errno_cause_and_next_step() {
        let line = explain(
            "attaching the kprobe to do_unlinkat",
            &observed(Probe::Kprobe, Stage::Attach, ENOENT),
            &this_machine(),
        );
        assert!(line.starts_with("attaching the kprobe to do_unlinkat failed with ENOENT (-2): "), "{line}");
        assert!(line.contains("CONFIG_KPROBES"), "{line}");
        assert!(line.contains("run lesson-03 if `sudo unlink-doctor` says it is ready"), "{line}");
        assert!(line.contains("cargo xtask vm -- target/debug/lesson-02"), "{line}");
        assert!(!line.contains('\n'));
        let refused = explain("loading", &observed(Probe::Fentry, Stage::Load, EPERM), &this_machine());
        assert!(refused.contains("EPERM (-1)") && refused.contains("`ulimit -l` is wrong here"), "{refused}");
        let odd = explain("loading", &observed(Probe::Fentry, Stage::Load, 999), &this_machine());
        assert!(odd.contains("error -999") && odd.contains("unlink-doctor --report"), "{odd}");
    }

    #[test]
    fn errno_is_found_in_libbpf_rs_messages() {
        assert_eq!(errno_of(&"No such file or directory (os error 2)"), Some(2));
        assert_eq!(errno_of(&"failed to attach: Unknown error 524 (os error 524)"), Some(524));
        assert_eq!(errno_of(&"nothing here"), None);
    }

    #[test]
    fn versions_and_capabilities() {
        assert_eq!(parse_kernel_version("6.1.0-27-amd64"), Some((6, 1)));
        assert_eq!(parse_kernel_version("7.0.0-rc1+"), Some((7, 0)));
        assert_eq!(parse_kernel_version("6.18.44-fc-v595\n"), Some((6, 18)));
        assert_eq!(parse_kernel_version("6.1"), Some((6, 1)));
        assert_eq!(parse_kernel_version("6"), None);
        assert_eq!(parse_kernel_version("linux"), None);
        assert!(privileged_from_status("Name:\tx\nCapEff:\t000001fffeffffff\n"));
        assert!(privileged_from_status("CapEff:\t000000c000000000\n")); // CAP_BPF + CAP_PERFMON
        assert!(!privileged_from_status("CapEff:\t0000008000000000\n")); // CAP_BPF alone
        assert!(!privileged_from_status("CapEff:\t0000000000000000\n"));
        assert!(!privileged_from_status("garbage"));
    }

    #[test]
    fn catalogue_ids_are_unique_and_fixes_name_a_next_step() {
        for (i, failure) in CATALOGUE.iter().enumerate() {
            assert!(CATALOGUE[i + 1..].iter().all(|other| other.id != failure.id), "{}", failure.id);
            assert!(!failure.fix.is_empty() && !failure.cause.is_empty());
        }
    }
}
