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
#[derive(Debug, PartialEq, Eq, Serialize)]
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
const EACCES: i32 = libc::EACCES;
const ENOMEM: i32 = libc::ENOMEM;
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
        id: "container-restricted",
        errno: Some(EPERM),
        title: "Root in a container or user namespace without BPF rights",
        cause: "this process is root, but in a container or user namespace that lacks CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN) in the host's namespace, or whose seccomp profile blocks bpf(); sudo cannot help",
        detect: "euid 0 without the capabilities in CapEff, a non-identity /proc/self/uid_map, or Seccomp: 2 in /proc/self/status",
        fix: "run {lesson} on the host, or start the container with `--privileged` (or `--cap-add BPF --cap-add PERFMON --security-opt seccomp=unconfined`), or use a VM: `cargo xtask vm -- target/debug/{lesson}`",
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
        id: "verifier-rejected",
        errno: Some(EACCES),
        title: "The verifier rejected the program",
        cause: "the BPF verifier refused the program; an fentry/fexit program reads its arguments with the types of the function's BTF prototype, so a --function whose arguments are not (int dfd, struct filename *name), such as vfs_unlink, is refused",
        detect: "the verifier's log, shown whole with -v, which names each argument's type: `func 'vfs_unlink' arg1 has btf_id 912 type STRUCT 'inode'`",
        fix: "drop --function so {lesson} picks do_unlinkat or filename_unlinkat, or name a function with the prototype (int dfd, struct filename *name); -v shows the verifier's whole log",
    },
    Failure {
        id: "ring-buffer-too-big",
        errno: Some(ENOMEM),
        title: "No memory for the ring buffer",
        cause: "the kernel could not allocate the lesson's maps, and the ring buffer, sized by --ring-buffer-kib (2048 KiB unless given), is by far the largest",
        detect: "free memory (`free -m`, a memory cgroup's limit) against --ring-buffer-kib",
        fix: "give a smaller --ring-buffer-kib (the default, 2048, is enough for thousands of unlinks a second), or free memory",
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
        id: "kernel-too-old",
        errno: Some(EINVAL),
        title: "Kernel too old for the lessons",
        cause: "both lessons need Linux 5.8 or newer (BPF ring buffer, bpf_probe_read_kernel_str); older kernels reject the ring buffer map or the helpers",
        detect: "the kernel version (`uname -r`)",
        fix: "use a newer kernel, or run {lesson} in a VM: `cargo xtask vm -- target/debug/{lesson}`",
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
    CATALOGUE
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("no failure {id:?} in the catalogue"))
}

/// What is known about the system when a failure has to be explained or predicted.
/// `None` means "could not be checked"; [`Facts::read`] fills the cheap fields,
/// unlink-doctor all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// May load and attach tracing programs: root or the capabilities, in the initial user namespace.
    pub privileged: bool,
    pub kprobe_pmu: bool,
    pub kprobe_events: bool,
    pub btf: bool,
    /// (major, minor) of the running kernel.
    pub kernel_version: Option<(u32, u32)>,
    pub lockdown_confidentiality: bool,
    /// Effective user id: 0 without the capabilities means a container or user namespace.
    pub euid: Option<u32>,
    /// The process is in a user namespace other than the initial one (non-identity uid_map).
    pub user_namespace: bool,
    /// `Seccomp:` from /proc/self/status: 0 none, 1 strict, 2 filter.
    pub seccomp: Option<u32>,
    /// `uname -m`, normalised by [`normalise_arch`]: x86_64, aarch64, riscv64, ...
    pub arch: Option<String>,
    /// CONFIG_BPF_SYSCALL, from the kernel config when one was found.
    pub config_bpf_syscall: Option<bool>,
    /// CONFIG_KPROBES and CONFIG_KPROBE_EVENTS.
    pub config_kprobes: Option<bool>,
    /// CONFIG_FUNCTION_TRACER and CONFIG_DYNAMIC_FTRACE.
    pub config_ftrace: Option<bool>,
    /// CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS.
    pub config_direct_calls: Option<bool>,
    /// The unlink function is a BTF function (what fentry needs).
    pub function_in_btf: Option<bool>,
    /// The unlink function is a text symbol in /proc/kallsyms (what a kprobe needs).
    pub function_in_kallsyms: Option<bool>,
    /// The function is listed in tracefs available_filter_functions.
    pub function_traceable: Option<bool>,
    /// The function is on the kprobe blacklist.
    pub kprobe_blacklisted: Option<bool>,
    /// Function tracing is locked although the caller is privileged: tracefs
    /// available_filter_functions answers EPERM to root (this tutorial's microVM).
    pub function_tracing_locked: bool,
    /// The RLIMIT_MEMLOCK the programs would get, in bytes, when libbpf cannot raise it
    /// (hard limit not unlimited and no CAP_SYS_RESOURCE); `None`: no limit that sticks,
    /// or unknown. Matters before 5.11.
    pub memlock_limit: Option<u64>,
}

impl Facts {
    /// Read the cheap facts from the system files under `root` (normally `/`).
    pub fn read(root: &Path) -> Facts {
        let exists = |path: &str| root.join(path).exists();
        let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap_or_default();
        let status = read("proc/self/status");
        let user_namespace = uid_map_is_namespaced(&read("proc/self/uid_map"));
        Facts {
            privileged: privileged_from_status(&status) && !user_namespace,
            kprobe_pmu: exists("sys/bus/event_source/devices/kprobe"),
            kprobe_events: exists("sys/kernel/tracing/kprobe_events")
                || exists("sys/kernel/debug/tracing/kprobe_events"),
            btf: exists("sys/kernel/btf/vmlinux"),
            kernel_version: parse_kernel_version(&read("proc/sys/kernel/osrelease")),
            lockdown_confidentiality: read("sys/kernel/security/lockdown")
                .contains("[confidentiality]"),
            euid: status_field(&status, "Uid:")
                .and_then(|uids| uids.split_whitespace().nth(1)?.parse().ok()),
            user_namespace,
            seccomp: status_field(&status, "Seccomp:").and_then(|mode| mode.trim().parse().ok()),
            arch: Some(read("proc/sys/kernel/arch"))
                .filter(|a| !a.trim().is_empty())
                .map(|a| normalise_arch(&a)),
            ..Facts::default()
        }
    }
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The value after `key` (such as `"CapEff:"`) on its line of a /proc/PID/status text.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .map(str::trim)
}

/// Effective capabilities from a /proc/PID/status text, as a bit set.
pub fn effective_capabilities(status: &str) -> Option<u64> {
    u64::from_str_radix(status_field(status, "CapEff:")?, 16).ok()
}

/// The capabilities in `caps` that let a process load and attach tracing programs.
pub fn capabilities_suffice(caps: u64) -> bool {
    let has = |cap: u32| caps & (1 << cap) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

/// Root, or the capabilities that let a process load and attach tracing programs.
fn privileged_from_status(status: &str) -> bool {
    effective_capabilities(status).is_some_and(capabilities_suffice)
}

/// A /proc/PID/uid_map other than the initial namespace's `0 0 4294967295`.
/// An empty or unreadable map says nothing, so it counts as the initial namespace.
pub fn uid_map_is_namespaced(uid_map: &str) -> bool {
    let lines: Vec<Vec<&str>> = uid_map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|f: &Vec<&str>| !f.is_empty())
        .collect();
    !lines.is_empty() && lines != [vec!["0", "0", "4294967295"]]
}

/// `uname -m` in one spelling: Debian's `amd64`/`arm64` become `x86_64`/`aarch64`.
pub fn normalise_arch(machine: &str) -> String {
    match machine.trim() {
        "amd64" | "x86-64" => "x86_64".to_string(),
        "arm64" => "aarch64".to_string(),
        other => other.to_string(),
    }
}

/// Both lessons use the BPF ring buffer (5.8) and bpf_probe_read_kernel_str (5.5).
pub const LESSONS_MIN_VERSION: (u32, u32) = (5, 8);

/// What fentry/fexit on an ordinary kernel function needs on one architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FentryNeeds {
    /// The first kernel version where fentry attaches to ordinary functions.
    pub min_version: (u32, u32),
    /// Why that version.
    pub why: &'static str,
    /// The version is known only roughly (from release notes, not measured).
    pub approximate: bool,
}

/// fentry's needs on `arch` (as normalised), or `None` for an architecture without BPF trampolines.
pub fn fentry_needs(arch: &str) -> Option<FentryNeeds> {
    let (min_version, why, approximate) = match arch {
        "x86_64" => ((5, 5), "BPF trampolines arrived in 5.5", false),
        "aarch64" => (
            (6, 4),
            "trampolines arrived in 6.0, ftrace direct calls (needed for kernel functions) in 6.4",
            false,
        ),
        "riscv64" => ((6, 3), "BPF trampolines arrived in 6.3", true),
        "s390x" => ((6, 3), "BPF trampolines arrived in 6.3", true),
        "ppc64" | "ppc64le" => ((6, 13), "BPF trampolines arrived in about 6.13", true),
        "loongarch64" => ((6, 17), "BPF trampolines arrived in about 6.17", true),
        _ => return None,
    };
    Some(FentryNeeds {
        min_version,
        why,
        approximate,
    })
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
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
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
    let old_kernel = facts
        .kernel_version
        .is_some_and(|v| v < LESSONS_MIN_VERSION);
    let no_kprobes =
        !facts.kprobe_pmu && !facts.kprobe_events || facts.config_kprobes == Some(false);
    let id = match (observed.errno, observed.probe, observed.stage) {
        (_, _, _)
            if log.contains("kernel BTF is missing")
                || log.contains("failed to find valid kernel BTF") =>
        {
            "no-btf"
        }
        (Some(ENOSYS), _, _) => "no-bpf-syscall",
        (Some(EPERM), _, _)
            if !facts.privileged && (facts.euid == Some(0) || facts.user_namespace) =>
        {
            "container-restricted"
        }
        (Some(EPERM), _, _) if !facts.privileged => "not-privileged",
        (Some(EPERM | EINVAL), _, _) if facts.lockdown_confidentiality => "lockdown",
        (Some(EINVAL), _, Stage::Load) if old_kernel => "kernel-too-old",
        (Some(EPERM), _, _) if facts.seccomp == Some(2) => "container-restricted",
        (Some(EPERM), Probe::Fentry, Stage::Load) => "tracing-refused",
        (Some(EPERM), _, Stage::Load) if facts.kernel_version.is_some_and(|v| v < (5, 11)) => {
            "memlock-limit"
        }
        (Some(ENOENT), Probe::Kprobe, Stage::Attach) if no_kprobes => "no-kprobes",
        (Some(ENOENT | ESRCH), _, _) if !facts.btf && observed.probe == Probe::Fentry => "no-btf",
        (Some(ENOENT | ESRCH), _, _) => "function-not-found",
        (Some(EINVAL), Probe::Kprobe, Stage::Attach) => "not-traceable",
        (Some(ENOTSUPP), _, _) => "fentry-not-supported",
        (Some(EBUSY), Probe::Kprobe, _) => "kprobe-busy",
        (Some(EBUSY), Probe::Fentry, _) => "fentry-busy",
        (Some(E2BIG), Probe::Fentry, Stage::Attach) => "trampoline-full",
        (Some(EACCES), _, Stage::Load) => "verifier-rejected",
        (Some(ENOMEM), _, Stage::Load) => "ring-buffer-too-big",
        _ => "unknown",
    };
    by_id(id)
}

/// What the read-only facts say about a lesson before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prediction {
    /// It will fail like this; `because` names the facts that decide it.
    Fails {
        failure: &'static Failure,
        because: String,
    },
    /// Nothing found that would fail, but some of what decides it could not be checked.
    Unchecked {
        /// The catalogue entry that kept the check from running, if one did (not root: `not-privileged`).
        blocked_by: Option<&'static Failure>,
        /// What could not be checked, each with how to check it.
        missing: Vec<String>,
    },
    /// Every read-only check that matters passed.
    Passes,
}

/// Predict how the lesson using `probe` will end, from read-only facts alone. Only a
/// real load and attach is proof (unlink-doctor's live check): this is for when it cannot run.
pub fn predict(probe: Probe, facts: &Facts) -> Prediction {
    let fails = |id: &str, because: String| Prediction::Fails {
        failure: by_id(id),
        because,
    };
    let mut missing = Vec::new();

    if facts.config_bpf_syscall == Some(false) {
        return fails("no-bpf-syscall", "CONFIG_BPF_SYSCALL is not set".into());
    }
    match facts.kernel_version {
        Some(v) if v < LESSONS_MIN_VERSION => {
            return fails(
                "kernel-too-old",
                format!("kernel {}.{} is older than 5.8", v.0, v.1),
            );
        }
        Some(_) => {}
        None => missing.push("the kernel version (`uname -r` did not parse)".to_string()),
    }
    if !facts.btf {
        return fails("no-btf", "/sys/kernel/btf/vmlinux is missing".into());
    }
    if facts.lockdown_confidentiality {
        return fails(
            "lockdown",
            "/sys/kernel/security/lockdown is [confidentiality]".into(),
        );
    }
    match probe {
        Probe::Kprobe => {
            if !facts.kprobe_pmu && !facts.kprobe_events {
                if facts.config_kprobes == Some(true) {
                    missing.push("kprobe support: CONFIG_KPROBES=y but neither the kprobe PMU nor kprobe_events is visible (mount tracefs)".into());
                } else {
                    let config = match facts.config_kprobes {
                        Some(_) => "CONFIG_KPROBES is not set",
                        None => "no kernel config to confirm",
                    };
                    return fails(
                        "no-kprobes",
                        format!("no kprobe PMU and no kprobe_events; {config}"),
                    );
                }
            }
            match facts.function_in_kallsyms {
                Some(false) => {
                    return fails(
                        "function-not-found",
                        "the function is not a text symbol in /proc/kallsyms".into(),
                    )
                }
                Some(true) => {}
                None => missing.push("the function in /proc/kallsyms (unreadable)".into()),
            }
            if facts.kprobe_blacklisted == Some(true) {
                return fails(
                    "not-traceable",
                    "the function is on the kprobe blacklist".into(),
                );
            }
        }
        Probe::Fentry => {
            match (facts.arch.as_deref(), facts.kernel_version) {
                (Some(arch), Some(version)) => match fentry_needs(arch) {
                    Some(needs) if version < needs.min_version && !needs.approximate => {
                        let (major, minor) = needs.min_version;
                        return fails(
                            "fentry-not-supported",
                            format!("{arch} needs Linux >= {major}.{minor} ({}), this is {}.{}", needs.why, version.0, version.1),
                        );
                    }
                    Some(needs) if version < needs.min_version => missing.push(format!(
                        "fentry on {arch} before {}.{} (the version is approximate: only the live check tells)",
                        needs.min_version.0, needs.min_version.1
                    )),
                    Some(_) => {}
                    None => missing.push(format!("fentry on {arch} (no known BPF trampoline support: only the live check tells)")),
                },
                (None, _) => missing.push("the architecture (`uname -m`)".into()),
                (_, None) => {}
            }
            match (facts.config_ftrace, facts.config_direct_calls) {
                (Some(false), _) => {
                    return fails(
                        "fentry-busy",
                        "CONFIG_FUNCTION_TRACER or CONFIG_DYNAMIC_FTRACE is not set".into(),
                    );
                }
                (_, Some(false)) => {
                    return fails(
                        "fentry-not-supported",
                        "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS is not set: no trampolines on kernel functions".into(),
                    );
                }
                (Some(true), Some(true)) => {}
                _ => missing.push("the ftrace options (no kernel config found)".into()),
            }
            if facts.function_in_btf == Some(false) {
                return fails(
                    "function-not-found",
                    "the function is not in the kernel's BTF".into(),
                );
            }
            if facts.function_tracing_locked {
                return fails(
                    "tracing-refused",
                    "function tracing is locked: available_filter_functions answers EPERM even to root".into(),
                );
            }
            match facts.function_traceable {
                Some(false) => {
                    return fails(
                        "not-traceable",
                        "the function is not in available_filter_functions (notrace)".into(),
                    );
                }
                Some(true) => {}
                None => missing
                    .push("the function in tracefs available_filter_functions (tracefs not mounted, or unreadable)".into()),
            }
        }
    }
    if !facts.privileged {
        if facts.euid == Some(0) || facts.user_namespace {
            return fails(
                "container-restricted",
                "root here lacks CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN) in the initial namespace"
                    .into(),
            );
        }
        missing.insert(
            0,
            "whether the kernel accepts the programs (needs root: `sudo unlink-doctor`)".into(),
        );
        return Prediction::Unchecked {
            blocked_by: Some(by_id("not-privileged")),
            missing,
        };
    }
    if let (Some(version), Some(limit)) = (facts.kernel_version, facts.memlock_limit) {
        if version < (5, 11) && limit < MEMLOCK_NEEDED {
            return fails(
                "memlock-limit",
                format!(
                    "RLIMIT_MEMLOCK is {} KiB and cannot be raised",
                    limit / 1024
                ),
            );
        }
    }
    match missing.is_empty() {
        true => Prediction::Passes,
        false => Prediction::Unchecked {
            blocked_by: None,
            missing,
        },
    }
}

/// Locked memory the lessons' maps take on kernels that still charge it (before 5.11), rounded up.
pub const MEMLOCK_NEEDED: u64 = 8 << 20;

impl Failure {
    /// The next step with the lesson names filled in.
    pub fn fix_for(&self, probe: Probe) -> String {
        self.fix
            .replace("{lesson}", probe.lesson())
            .replace("{other}", probe.other().lesson())
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
    let errno = observed
        .errno
        .map(errno_label)
        .unwrap_or_else(|| "an error".to_string());
    let doctor = if failure.fix.contains("unlink-doctor") {
        ""
    } else {
        " (details: `sudo unlink-doctor`)"
    };
    let verifier = match verifier_last_line(observed.libbpf_log) {
        Some(line) if failure.id == "verifier-rejected" => format!(" (the verifier: \"{line}\")"),
        _ => String::new(),
    };
    format!(
        "{what} failed with {errno}: {}{verifier}. Next: {}{doctor}",
        failure.cause,
        failure.fix_for(observed.probe)
    )
}

/// The verifier's reason, the last line of the last program load log libbpf
/// printed, before its statistics (`processed N insns ...`).
pub fn verifier_last_line(libbpf_log: &str) -> Option<&str> {
    let end = libbpf_log.rfind("-- END PROG LOAD LOG --")?;
    let begin = libbpf_log[..end].rfind("-- BEGIN PROG LOAD LOG --")?;
    let statistics = ["processed ", "verification time ", "stack depth "];
    let (_, verifier_log) = libbpf_log[begin..end].split_once('\n')?;
    verifier_log
        .lines()
        .map(str::trim)
        .rev()
        .find(|line| !line.is_empty() && !statistics.iter().any(|s| line.starts_with(s)))
        .filter(|line| !line.chars().any(char::is_control))
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
            euid: Some(0),
            arch: Some("x86_64".into()),
            config_bpf_syscall: Some(true),
            config_kprobes: Some(false),
            config_ftrace: Some(true),
            config_direct_calls: Some(true),
            function_in_btf: Some(true),
            function_in_kallsyms: Some(true),
            function_tracing_locked: true,
            seccomp: Some(0),
            ..Facts::default()
        }
    }

    /// A stock distribution kernel, run as root: everything works.
    fn debian(arch: &str, version: (u32, u32)) -> Facts {
        Facts {
            kprobe_pmu: true,
            kprobe_events: true,
            kernel_version: Some(version),
            arch: Some(arch.into()),
            config_kprobes: Some(true),
            config_direct_calls: Some(arch == "x86_64" || version >= (6, 4)),
            function_tracing_locked: false,
            function_traceable: Some(true),
            ..this_machine()
        }
    }

    fn failed(prediction: Prediction) -> &'static str {
        match prediction {
            Prediction::Fails { failure, .. } => failure.id,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn predictions_for_this_machine_and_stock_kernels() {
        assert_eq!(
            failed(predict(Probe::Kprobe, &this_machine())),
            "no-kprobes"
        );
        assert_eq!(
            failed(predict(Probe::Fentry, &this_machine())),
            "tracing-refused"
        );
        for version in [(5, 10), (6, 1), (6, 12), (7, 2)] {
            assert_eq!(
                predict(Probe::Kprobe, &debian("x86_64", version)),
                Prediction::Passes
            );
            assert_eq!(
                predict(Probe::Fentry, &debian("x86_64", version)),
                Prediction::Passes
            );
        }
        assert_eq!(
            failed(predict(Probe::Fentry, &debian("aarch64", (5, 10)))),
            "fentry-not-supported"
        );
        assert_eq!(
            failed(predict(Probe::Fentry, &debian("aarch64", (6, 1)))),
            "fentry-not-supported"
        );
        assert_eq!(
            predict(Probe::Kprobe, &debian("aarch64", (6, 1))),
            Prediction::Passes
        );
        assert_eq!(
            predict(Probe::Fentry, &debian("aarch64", (6, 12))),
            Prediction::Passes
        );
        assert_eq!(
            failed(predict(Probe::Kprobe, &debian("x86_64", (4, 19)))),
            "kernel-too-old"
        );
        let riscv = predict(
            Probe::Fentry,
            &Facts {
                config_direct_calls: Some(true),
                ..debian("riscv64", (6, 1))
            },
        );
        assert!(
            matches!(
                riscv,
                Prediction::Unchecked {
                    blocked_by: None,
                    ..
                }
            ),
            "{riscv:?}"
        );
    }

    #[test]
    fn predictions_need_privileges_and_evidence() {
        let user = Facts {
            privileged: false,
            euid: Some(1000),
            ..debian("x86_64", (6, 1))
        };
        match predict(Probe::Kprobe, &user) {
            Prediction::Unchecked {
                blocked_by: Some(failure),
                missing,
            } => {
                assert_eq!(failure.id, "not-privileged");
                assert!(missing[0].contains("sudo unlink-doctor"), "{missing:?}");
            }
            other => panic!("{other:?}"),
        }
        let container = Facts {
            privileged: false,
            ..debian("x86_64", (6, 1))
        };
        assert_eq!(
            failed(predict(Probe::Fentry, &container)),
            "container-restricted"
        );
        let no_btf = Facts {
            btf: false,
            ..debian("x86_64", (6, 1))
        };
        assert_eq!(failed(predict(Probe::Kprobe, &no_btf)), "no-btf");
        let no_tracefs = Facts {
            kprobe_events: false,
            function_traceable: None,
            ..debian("x86_64", (6, 1))
        };
        assert_eq!(predict(Probe::Kprobe, &no_tracefs), Prediction::Passes);
        assert!(matches!(
            predict(Probe::Fentry, &no_tracefs),
            Prediction::Unchecked {
                blocked_by: None,
                ..
            }
        ));
        let renamed = Facts {
            function_in_btf: Some(false),
            function_in_kallsyms: Some(false),
            ..debian("x86_64", (7, 2))
        };
        assert_eq!(
            failed(predict(Probe::Kprobe, &renamed)),
            "function-not-found"
        );
        assert_eq!(
            failed(predict(Probe::Fentry, &renamed)),
            "function-not-found"
        );
        let old_memlock = Facts {
            memlock_limit: Some(64 << 10),
            ..debian("x86_64", (5, 10))
        };
        assert_eq!(
            failed(predict(Probe::Kprobe, &old_memlock)),
            "memlock-limit"
        );
        let no_config = Facts {
            config_ftrace: None,
            config_direct_calls: None,
            ..debian("x86_64", (6, 1))
        };
        assert!(matches!(
            predict(Probe::Fentry, &no_config),
            Prediction::Unchecked { .. }
        ));
    }

    #[test]
    fn containers_and_namespaces() {
        let container = Facts {
            privileged: false,
            ..this_machine()
        };
        assert_eq!(
            classify(&observed(Probe::Kprobe, Stage::Load, EPERM), &container).id,
            "container-restricted"
        );
        let userns = Facts {
            privileged: false,
            euid: Some(1000),
            user_namespace: true,
            ..this_machine()
        };
        assert_eq!(
            classify(&observed(Probe::Kprobe, Stage::Load, EPERM), &userns).id,
            "container-restricted"
        );
        assert!(uid_map_is_namespaced("         0       1000          1\n"));
        assert!(!uid_map_is_namespaced("         0          0 4294967295\n"));
        assert!(!uid_map_is_namespaced(""));
        let old = Facts {
            kernel_version: Some((4, 19)),
            ..this_machine()
        };
        assert_eq!(
            classify(&observed(Probe::Kprobe, Stage::Load, EINVAL), &old).id,
            "kernel-too-old"
        );
    }

    #[test]
    fn fentry_needs_per_architecture() {
        assert_eq!(fentry_needs("x86_64").unwrap().min_version, (5, 5));
        assert_eq!(
            fentry_needs(&normalise_arch("arm64")).unwrap().min_version,
            (6, 4)
        );
        assert!(fentry_needs("ppc64le").unwrap().approximate);
        assert_eq!(fentry_needs("mips"), None);
        assert_eq!(normalise_arch("amd64\n"), "x86_64");
    }

    fn observed(probe: Probe, stage: Stage, errno: i32) -> Observed<'static> {
        Observed {
            probe,
            stage,
            errno: Some(errno),
            libbpf_log: "",
        }
    }

    #[test]
    fn this_machines_failures_are_named_right() {
        let facts = this_machine();
        assert_eq!(
            classify(&observed(Probe::Kprobe, Stage::Attach, ENOENT), &facts).id,
            "no-kprobes"
        );
        assert_eq!(
            classify(&observed(Probe::Fentry, Stage::Load, EPERM), &facts).id,
            "tracing-refused"
        );
    }

    #[test]
    fn privileges_come_before_kernel_policy() {
        let facts = Facts {
            privileged: false,
            euid: Some(1000),
            ..this_machine()
        };
        assert_eq!(
            classify(&observed(Probe::Fentry, Stage::Load, EPERM), &facts).id,
            "not-privileged"
        );
        let old = Facts {
            kernel_version: Some((5, 10)),
            ..this_machine()
        };
        assert_eq!(
            classify(&observed(Probe::Kprobe, Stage::Load, EPERM), &old).id,
            "memlock-limit"
        );
    }

    #[test]
    fn missing_functions_and_btf() {
        let with_kprobes = Facts {
            kprobe_pmu: true,
            config_kprobes: Some(true),
            ..this_machine()
        };
        assert_eq!(
            classify(
                &observed(Probe::Kprobe, Stage::Attach, ENOENT),
                &with_kprobes
            )
            .id,
            "function-not-found"
        );
        assert_eq!(
            classify(&observed(Probe::Fentry, Stage::Load, ESRCH), &with_kprobes).id,
            "function-not-found"
        );
        let no_btf = Facts {
            btf: false,
            ..with_kprobes
        };
        assert_eq!(
            classify(&observed(Probe::Fentry, Stage::Load, ESRCH), &no_btf).id,
            "no-btf"
        );
        let log = Observed {
            libbpf_log: "libbpf: kernel BTF is missing at '/sys/kernel/btf/vmlinux'",
            ..observed(Probe::Kprobe, Stage::Load, ESRCH)
        };
        assert_eq!(classify(&log, &no_btf).id, "no-btf");
    }

    #[test]
    fn attach_errors() {
        let facts = Facts {
            kprobe_pmu: true,
            config_kprobes: Some(true),
            ..this_machine()
        };
        assert_eq!(
            classify(&observed(Probe::Fentry, Stage::Attach, ENOTSUPP), &facts).id,
            "fentry-not-supported"
        );
        assert_eq!(
            classify(&observed(Probe::Kprobe, Stage::Attach, EINVAL), &facts).id,
            "not-traceable"
        );
        assert_eq!(
            classify(&observed(Probe::Kprobe, Stage::Attach, EBUSY), &facts).id,
            "kprobe-busy"
        );
        assert_eq!(
            classify(&observed(Probe::Fentry, Stage::Attach, EBUSY), &facts).id,
            "fentry-busy"
        );
        assert_eq!(
            classify(&observed(Probe::Fentry, Stage::Attach, E2BIG), &facts).id,
            "trampoline-full"
        );
        assert_eq!(
            classify(&observed(Probe::Fentry, Stage::Load, ENOSYS), &facts).id,
            "no-bpf-syscall"
        );
        assert_eq!(
            classify(&observed(Probe::Fentry, Stage::Load, libc::EIO), &facts).id,
            "unknown"
        );
        let locked = Facts {
            lockdown_confidentiality: true,
            ..facts
        };
        assert_eq!(
            classify(&observed(Probe::Kprobe, Stage::Load, EINVAL), &locked).id,
            "lockdown"
        );
    }

    #[test]
    fn explanations_name_errno_cause_and_next_step() {
        let line = explain(
            "attaching the kprobe to do_unlinkat",
            &observed(Probe::Kprobe, Stage::Attach, ENOENT),
            &this_machine(),
        );
        assert!(
            line.starts_with("attaching the kprobe to do_unlinkat failed with ENOENT (-2): "),
            "{line}"
        );
        assert!(line.contains("CONFIG_KPROBES"), "{line}");
        assert!(
            line.contains("run lesson-03 if `sudo unlink-doctor` says it is ready"),
            "{line}"
        );
        assert!(
            line.contains("cargo xtask vm -- target/debug/lesson-02"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        let refused = explain(
            "loading",
            &observed(Probe::Fentry, Stage::Load, EPERM),
            &this_machine(),
        );
        assert!(
            refused.contains("EPERM (-1)") && refused.contains("`ulimit -l` is wrong here"),
            "{refused}"
        );
        let odd = explain(
            "loading",
            &observed(Probe::Fentry, Stage::Load, 999),
            &this_machine(),
        );
        assert!(
            odd.contains("error -999") && odd.contains("unlink-doctor --report"),
            "{odd}"
        );
    }

    /// The end of libbpf's log for `lesson-03 --function vfs_unlink` on Debian's 6.12.
    const VFS_UNLINK_LOG: &str = "\
libbpf: prog 'unlink_exit': BPF program load failed: Permission denied
libbpf: prog 'unlink_exit': -- BEGIN PROG LOAD LOG --
0: R1=ctx() R10=fp0
; int BPF_PROG(unlink_exit, int dfd, struct filename *name, int ret) @ unlink_fentry.bpf.c:52
0: (79) r6 = *(u64 *)(r1 +16)
func 'vfs_unlink' arg2 has btf_id 909 type STRUCT 'dentry'
; unlink_event_begin(e, name->name); @ unlink_fentry.bpf.c:80
65: (79) r1 = *(u64 *)(r9 +0)
access beyond the end of member i_mode (mend:2) in struct inode with off 0 size 8
processed 30 insns (limit 1000000) max_states_per_insn 0 total_states 3 peak_states 3 mark_read 2
-- END PROG LOAD LOG --
libbpf: prog 'unlink_exit': failed to load: -EACCES
libbpf: failed to load object 'unlink_fentry_bpf'
";

    #[test]
    fn verifier_refusals_quote_the_verifier() {
        assert_eq!(
            verifier_last_line(VFS_UNLINK_LOG),
            Some(
                "access beyond the end of member i_mode (mend:2) in struct inode with off 0 size 8"
            )
        );
        assert_eq!(verifier_last_line("libbpf: no log here"), None);
        let refused = Observed {
            libbpf_log: VFS_UNLINK_LOG,
            ..observed(Probe::Fentry, Stage::Load, EACCES)
        };
        let line = explain(
            "loading the fentry/fexit programs on vfs_unlink",
            &refused,
            &this_machine(),
        );
        assert!(
            line.contains("failed with EACCES (-13): the BPF verifier refused"),
            "{line}"
        );
        assert!(
            line.contains("(the verifier: \"access beyond the end of member i_mode (mend:2) in struct inode with off 0 size 8\")"),
            "{line}"
        );
        assert!(
            line.contains("drop --function so lesson-03 picks"),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn no_memory_at_load_points_at_the_ring_buffer_flag() {
        let line = explain(
            "loading the kprobe programs on do_unlinkat",
            &observed(Probe::Kprobe, Stage::Load, ENOMEM),
            &this_machine(),
        );
        assert!(line.contains("failed with ENOMEM (-12)"), "{line}");
        assert!(
            line.contains("Next: give a smaller --ring-buffer-kib"),
            "{line}"
        );
    }

    #[test]
    fn errno_is_found_in_libbpf_rs_messages() {
        assert_eq!(errno_of(&"No such file or directory (os error 2)"), Some(2));
        assert_eq!(
            errno_of(&"failed to attach: Unknown error 524 (os error 524)"),
            Some(524)
        );
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
        assert!(privileged_from_status(
            "Name:\tx\nCapEff:\t000001fffeffffff\n"
        ));
        assert!(privileged_from_status("CapEff:\t000000c000000000\n")); // CAP_BPF + CAP_PERFMON
        assert!(!privileged_from_status("CapEff:\t0000008000000000\n")); // CAP_BPF alone
        assert!(!privileged_from_status("CapEff:\t0000000000000000\n"));
        assert!(!privileged_from_status("garbage"));
    }

    #[test]
    fn catalogue_ids_are_unique_and_fixes_name_a_next_step() {
        for (i, failure) in CATALOGUE.iter().enumerate() {
            assert!(
                CATALOGUE[i + 1..]
                    .iter()
                    .all(|other| other.id != failure.id),
                "{}",
                failure.id
            );
            assert!(!failure.fix.is_empty() && !failure.cause.is_empty());
        }
    }
}
