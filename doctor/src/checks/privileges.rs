//! The Privileges section: uid, capabilities, namespaces, seccomp, sysctls, lockdown, memlock.

use unlink_common::failures::{self, Facts, Probe};

use crate::check_ids::{CheckId, SectionId};
use crate::parse::limits;
use crate::report::{Item, Section, Status};
use crate::sysroot::SystemRoot;

const CAP_SYS_RESOURCE: u32 = 24;

pub fn section(root: &SystemRoot, status: &str, facts: &mut Facts) -> Section {
    let mut items = Vec::new();
    let euid: Option<u32> = failures::status_field(status, "Uid:")
        .and_then(|uids| uids.split_whitespace().nth(1)?.parse().ok());
    facts.euid = euid;
    items.push(match euid {
        Some(0) => Item::new(CheckId::PrivilegesEuid, Status::Ok, "0 (root)"),
        Some(uid) => Item::new(
            CheckId::PrivilegesEuid,
            Status::Warn,
            format!("{uid} (not root)"),
        )
        .advice("the lessons and the live check need root: `sudo unlink-doctor`"),
        None => Item::new(
            CheckId::PrivilegesEuid,
            Status::Warn,
            "unknown (/proc/self/status unreadable)",
        ),
    });
    let uid_map = root.read_text("/proc/self/uid_map").unwrap_or_default();
    facts.user_namespace = failures::uid_map_is_namespaced(&uid_map);
    let caps = failures::effective_capabilities(status);
    facts.privileged = caps.is_some_and(failures::capabilities_suffice) && !facts.user_namespace;
    let cap_names = |caps: u64| {
        [("CAP_BPF", 39), ("CAP_PERFMON", 38), ("CAP_SYS_ADMIN", 21)]
            .iter()
            .map(|(name, bit)| {
                format!(
                    "{name} {}",
                    if caps & (1u64 << bit) != 0 {
                        "yes"
                    } else {
                        "no"
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    items.push(match caps {
        Some(caps) if failures::capabilities_suffice(caps) => Item::new(
            CheckId::PrivilegesCapabilities,
            Status::Ok,
            format!("{} (CapEff {caps:016x})", cap_names(caps)),
        ),
        Some(caps) => {
            let item = Item::new(
                CheckId::PrivilegesCapabilities,
                Status::Fail,
                format!("{} (CapEff {caps:016x})", cap_names(caps)),
            );
            match euid {
                Some(0) => item.failure("container-restricted", Probe::Kprobe),
                _ => item.failure("not-privileged", Probe::Kprobe),
            }
        }
        None => Item::new(
            CheckId::PrivilegesCapabilities,
            Status::Warn,
            "unknown (no CapEff in /proc/self/status)",
        ),
    });
    items.push(match facts.user_namespace {
        false => Item::new(CheckId::PrivilegesUserNamespace, Status::Ok, "initial"),
        true => Item::new(
            CheckId::PrivilegesUserNamespace,
            Status::Fail,
            format!(
                "not the initial one (uid_map {})",
                uid_map.split_whitespace().collect::<Vec<_>>().join(" ")
            ),
        )
        .failure("container-restricted", Probe::Kprobe),
    });
    facts.seccomp = failures::status_field(status, "Seccomp:").and_then(|mode| mode.parse().ok());
    items.push(match facts.seccomp {
        Some(0) => Item::new(CheckId::PrivilegesSeccomp, Status::Ok, "off"),
        Some(2) => Item::new(CheckId::PrivilegesSeccomp, Status::Warn, "filter (mode 2)")
            .advice("a container's seccomp profile can block bpf() with EPERM"),
        Some(mode) => Item::new(
            CheckId::PrivilegesSeccomp,
            Status::Warn,
            format!("mode {mode}"),
        ),
        None => Item::new(CheckId::PrivilegesSeccomp, Status::Info, "unknown"),
    });
    for (check, path, note) in [
        (
            CheckId::PrivilegesUnprivilegedBpfDisabled,
            "/proc/sys/kernel/unprivileged_bpf_disabled",
            "tracing programs need privileges whatever it says",
        ),
        (
            CheckId::PrivilegesPerfEventParanoid,
            "/proc/sys/kernel/perf_event_paranoid",
            "root and CAP_PERFMON are exempt",
        ),
    ] {
        items.push(match root.read_line(path) {
            Some(value) => Item::new(check, Status::Info, format!("{value} ({note})")),
            None => Item::new(check, Status::Info, "unknown"),
        });
    }
    let lockdown = root.read_line("/sys/kernel/security/lockdown");
    facts.lockdown_confidentiality = lockdown
        .as_deref()
        .is_some_and(|l| l.contains("[confidentiality]"));
    items.push(match lockdown {
        Some(mode) if facts.lockdown_confidentiality => {
            Item::new(CheckId::PrivilegesLockdown, Status::Fail, mode)
                .failure("lockdown", Probe::Kprobe)
        }
        Some(mode) => Item::new(CheckId::PrivilegesLockdown, Status::Ok, mode),
        None => Item::new(
            CheckId::PrivilegesLockdown,
            Status::Info,
            "unknown (securityfs not mounted, or no lockdown LSM)",
        ),
    });
    let memlock = root
        .read_text("/proc/self/limits")
        .ok()
        .and_then(|text| limits::memlock(&text));
    let can_raise = caps.is_some_and(|c| c & (1 << CAP_SYS_RESOURCE) != 0);
    facts.memlock_limit = memlock.and_then(|l| {
        if can_raise || l.hard.is_none() {
            None
        } else {
            l.soft
        }
    });
    let charged = facts.kernel_version.is_some_and(|v| v < (5, 11));
    let shown = |bytes: Option<u64>| {
        bytes
            .map(|b| format!("{} KiB", b / 1024))
            .unwrap_or_else(|| "unlimited".into())
    };
    items.push(match (memlock, charged) {
        (Some(limit), false) => Item::new(
            CheckId::PrivilegesMemlock,
            Status::Info,
            format!("{} (not charged since 5.11)", shown(limit.soft)),
        ),
        (Some(limit), true) => match facts.memlock_limit {
            Some(bytes) if bytes < failures::MEMLOCK_NEEDED => Item::new(
                CheckId::PrivilegesMemlock,
                Status::Fail,
                format!("{} and cannot be raised", shown(limit.soft)),
            )
            .failure("memlock-limit", Probe::Kprobe),
            _ => Item::new(
                CheckId::PrivilegesMemlock,
                Status::Ok,
                format!("{} (libbpf raises it as needed)", shown(limit.soft)),
            ),
        },
        (None, _) => Item::new(CheckId::PrivilegesMemlock, Status::Info, "unknown"),
    });
    Section::new(SectionId::Privileges, items)
}
