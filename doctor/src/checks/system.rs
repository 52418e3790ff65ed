//! The System section: `uname -srvm`, the distribution, and hints of a container, WSL or VM.

use unlink_common::failures;

use crate::check_ids::{CheckId, SectionId};
use crate::parse::config::KernelConfig;
use crate::parse::{mountinfo, os_release};
use crate::report::{Item, Section, Status};
use crate::sysroot::SystemRoot;

/// `uname -srm` as read from the system root.
#[derive(Debug, Clone, Default)]
pub struct Uname {
    pub release: Option<String>,
    pub ostype: Option<String>,
    pub version: Option<String>,
    pub machine: Option<String>,
    /// Where `machine` came from.
    pub machine_source: &'static str,
}

pub fn uname(root: &SystemRoot, release: Option<String>, config: Option<&KernelConfig>) -> Uname {
    let mut uname = Uname {
        release,
        ostype: root.read_line("/proc/sys/kernel/ostype"),
        version: root.read_line("/proc/sys/kernel/version"),
        ..Uname::default()
    };
    let from_file = root
        .read_line("/proc/sys/kernel/arch")
        .map(|a| (failures::normalise_arch(&a), "/proc/sys/kernel/arch"));
    let from_config = || {
        config
            .and_then(KernelConfig::arch)
            .map(|a| (a.to_string(), "the kernel config"))
    };
    // Before 6.1 there is no kernel.arch sysctl: natively the doctor's own architecture is the kernel's.
    let native = || {
        root.is_native()
            .then(|| (std::env::consts::ARCH.to_string(), "this program's build"))
    };
    if let Some((machine, source)) = from_file.or_else(from_config).or_else(native) {
        uname.machine = Some(machine);
        uname.machine_source = source;
    }
    uname
}

pub fn section(root: &SystemRoot, uname: &Uname) -> Section {
    let mut items = Vec::new();
    let kernel = match (&uname.ostype, &uname.release, &uname.version) {
        (ostype, Some(release), version) => Item::new(
            CheckId::SystemKernel,
            Status::Info,
            [
                ostype.as_deref(),
                Some(release.as_str()),
                version.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" "),
        ),
        (_, None, _) => Item::labelled(
            CheckId::SystemKernel,
            "kernel (uname -r)",
            Status::Warn,
            match root.read_text("/proc/sys/kernel/osrelease") {
                Err(err) => format!("unknown: /proc/sys/kernel/osrelease unreadable: {err}"),
                Ok(_) => "unknown: /proc/sys/kernel/osrelease is empty".to_string(),
            },
        )
        .advice("the version decides what works: check `uname -r` by hand"),
    };
    items.push(kernel);
    items.push(match &uname.machine {
        Some(machine) => Item::new(
            CheckId::SystemMachine,
            Status::Info,
            format!("{machine} (from {})", uname.machine_source),
        ),
        None => Item::new(CheckId::SystemMachine, Status::Warn, "unknown").advice(
            "a snapshot needs /proc/sys/kernel/arch or a kernel config (see doctor/README.md)",
        ),
    });
    let distribution = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|path| {
            root.read_text(path)
                .ok()
                .and_then(|text| os_release::pretty_name(&os_release::parse(&text)))
        });
    items.push(Item::new(
        CheckId::SystemDistribution,
        Status::Info,
        distribution.unwrap_or_else(|| "unknown (no /etc/os-release)".to_string()),
    ));
    let hints = environment_hints(root, uname);
    items.push(Item::new(
        CheckId::SystemEnvironment,
        Status::Info,
        if hints.is_empty() {
            "no container, WSL or VM hints".to_string()
        } else {
            hints.join("; ")
        },
    ));
    Section::new(SectionId::System, items)
}

/// Signs of a container, WSL or a virtual machine, for the bug report.
fn environment_hints(root: &SystemRoot, uname: &Uname) -> Vec<String> {
    let mut hints = Vec::new();
    for (path, hint) in [
        ("/.dockerenv", "container (/.dockerenv)"),
        ("/run/.containerenv", "container (/run/.containerenv)"),
    ] {
        if root.exists(path) {
            hints.push(hint.to_string());
        }
    }
    let cgroup = root.read_text("/proc/1/cgroup").unwrap_or_default();
    if let Some(engine) = ["docker", "kubepods", "containerd", "libpod", "lxc"]
        .into_iter()
        .find(|e| cgroup.contains(e))
    {
        hints.push(format!("container ({engine} in /proc/1/cgroup)"));
    }
    let mounts = mountinfo::parse(&root.read_text("/proc/self/mountinfo").unwrap_or_default());
    if mounts
        .iter()
        .any(|m| m.mount_point == "/" && m.fs_type == "overlay")
    {
        hints.push("container (/ is an overlay)".to_string());
    }
    let release = uname.release.as_deref().unwrap_or_default().to_lowercase();
    if release.contains("microsoft")
        || release.contains("wsl")
        || root.exists("/proc/sys/fs/binfmt_misc/WSLInterop")
    {
        hints.push("WSL".to_string());
    }
    let cmdline = root.read_text("/proc/cmdline").unwrap_or_default();
    if cmdline.contains("firecracker") {
        hints.push("Firecracker microVM (/proc/cmdline)".to_string());
    } else if cmdline.contains("virtio_mmio.device=") {
        hints.push("microVM (virtio-mmio devices on /proc/cmdline)".to_string());
    }
    let cpuinfo = root.read_text("/proc/cpuinfo").unwrap_or_default();
    let hypervisor = cpuinfo
        .lines()
        .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"));
    if hypervisor {
        let vendor = root.read_line("/sys/class/dmi/id/sys_vendor");
        hints.push(match vendor {
            Some(vendor) => format!("virtual machine ({vendor})"),
            None => "virtual machine (hypervisor CPU flag)".to_string(),
        });
    }
    hints
}
