//! What is known about the system when a failure has to be explained or
//! predicted: privileges, kernel version and features, read from /proc and /sys.

use std::path::Path;

use serde::Serialize;

/// What is known about the system when a failure has to be explained or predicted.
/// `None` means "could not be checked"; [`Facts::live`] fills the cheap fields,
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
    /// The cheap facts about the running system, for a lesson's error line.
    pub fn live() -> Facts {
        let exists = |path: &str| Path::new(path).exists();
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let status = SelfStatus::live();
        // procfs 0.18 has no reader for uid_map.
        let user_namespace = uid_map_is_namespaced(&read("/proc/self/uid_map"));
        Facts {
            privileged: status.capabilities_suffice() && !user_namespace,
            kprobe_pmu: exists("/sys/bus/event_source/devices/kprobe"),
            kprobe_events: exists("/sys/kernel/tracing/kprobe_events")
                || exists("/sys/kernel/debug/tracing/kprobe_events"),
            btf: exists("/sys/kernel/btf/vmlinux"),
            kernel_version: live_kernel_version(),
            lockdown_confidentiality: read("/sys/kernel/security/lockdown")
                .contains("[confidentiality]"),
            euid: status.euid,
            user_namespace,
            seccomp: status.seccomp,
            arch: Some(read("/proc/sys/kernel/arch"))
                .filter(|a| !a.trim().is_empty())
                .map(|a| normalise_arch(&a)),
            ..Facts::default()
        }
    }
}

/// What /proc/self/status says about privileges; `None`: not there or unreadable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SelfStatus {
    /// Effective user id.
    pub euid: Option<u32>,
    /// Effective capabilities, a bit set.
    pub capeff: Option<u64>,
    /// 0 none, 1 strict, 2 filter.
    pub seccomp: Option<u32>,
}

impl SelfStatus {
    /// This process's, through procfs.
    pub fn live() -> SelfStatus {
        match procfs::process::Process::myself().and_then(|me| me.status()) {
            Ok(status) => SelfStatus {
                euid: Some(status.euid),
                capeff: Some(status.capeff),
                seccomp: status.seccomp,
            },
            Err(_) => SelfStatus::default(),
        }
    }

    /// From a status text as a snapshot holds it. Hand-written: procfs-core's `Status`
    /// (0.18) fails without about twenty fields (Pid, PPid, FDSize, SigQ, ...), and a
    /// snapshot keeps only the lines about identity, capabilities and seccomp.
    pub fn parse(status: &str) -> SelfStatus {
        SelfStatus {
            euid: status_field(status, "Uid:")
                .and_then(|uids| uids.split_whitespace().nth(1)?.parse().ok()),
            capeff: status_field(status, "CapEff:")
                .and_then(|caps| u64::from_str_radix(caps, 16).ok()),
            seccomp: status_field(status, "Seccomp:").and_then(|mode| mode.parse().ok()),
        }
    }

    /// Root, or the capabilities that let a process load and attach tracing programs.
    pub fn capabilities_suffice(&self) -> bool {
        self.capeff.is_some_and(capabilities_suffice)
    }
}

/// The running kernel's `(major, minor)`, through procfs.
pub fn live_kernel_version() -> Option<(u32, u32)> {
    let version = procfs::sys::kernel::Version::current().ok()?;
    Some((version.major.into(), version.minor.into()))
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The value after `key` (such as `"CapEff:"`) on its line of a /proc/PID/status text.
fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .map(str::trim)
}

/// The capabilities in `caps` that let a process load and attach tracing programs.
pub fn capabilities_suffice(caps: u64) -> bool {
    let has = |cap: u32| caps & (1 << cap) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
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
/// Hand-written for snapshots: procfs's `Version` also needs the patch number (`6.1` fails).
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Locked memory the lessons' maps take on kernels that still charge it (before 5.11), rounded up.
pub const MEMLOCK_NEEDED: u64 = 8 << 20;

/// Facts for tests, here and in the doctor (feature `test-fixtures`).
#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixtures {
    use super::Facts;

    /// The machine this tutorial is written on: no kprobes, tracing refused at load.
    pub fn this_machine() -> Facts {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_maps() {
        assert!(uid_map_is_namespaced("         0       1000          1\n"));
        assert!(!uid_map_is_namespaced("         0          0 4294967295\n"));
        assert!(!uid_map_is_namespaced(""));
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

    #[test]
    fn versions_and_capabilities() {
        assert_eq!(parse_kernel_version("6.1.0-27-amd64"), Some((6, 1)));
        assert_eq!(parse_kernel_version("7.0.0-rc1+"), Some((7, 0)));
        assert_eq!(parse_kernel_version("6.18.44-fc-v595\n"), Some((6, 18)));
        assert_eq!(parse_kernel_version("6.1"), Some((6, 1)));
        assert_eq!(parse_kernel_version("6"), None);
        assert_eq!(parse_kernel_version("linux"), None);
        let privileged = |status: &str| SelfStatus::parse(status).capabilities_suffice();
        assert!(privileged("Name:\tx\nCapEff:\t000001fffeffffff\n"));
        assert!(privileged("CapEff:\t000000c000000000\n")); // CAP_BPF + CAP_PERFMON
        assert!(!privileged("CapEff:\t0000008000000000\n")); // CAP_BPF alone
        assert!(!privileged("CapEff:\t0000000000000000\n"));
        assert!(!privileged("garbage"));
        assert_eq!(
            SelfStatus::parse("Uid:\t1000\t0\t0\t0\nSeccomp:\t2\n"),
            SelfStatus {
                euid: Some(0),
                capeff: None,
                seccomp: Some(2)
            }
        );
    }

    /// procfs and the snapshot parser agree on this process and this kernel.
    #[test]
    fn live_reads_agree_with_the_snapshot_parsers() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert_eq!(SelfStatus::live(), SelfStatus::parse(&status));
        assert!(SelfStatus::live().capeff.is_some());
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(live_kernel_version(), parse_kernel_version(&release));
        assert!(live_kernel_version().is_some());
    }
}
