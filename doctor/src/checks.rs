//! The read-only checks: each section is a function of the files under the
//! system root, and each fills in the [`Facts`] the verdicts are computed from.

use unlink_common::failures::{self, Facts, Probe};
use unlink_common::target::UNLINK_FUNCTIONS;

use crate::btf;
use crate::parse::config::{self, KernelConfig};
use crate::parse::kallsyms::{self, base_name};
use crate::parse::{limits, mountinfo, os_release};
use crate::report::{Item, Section, Status};
use crate::sysroot::{ReadError, SystemRoot, BTF_PATH};

/// Everything the read-only checks found.
pub struct Survey {
    pub sections: Vec<Section>,
    pub facts: Facts,
    /// The function the lessons would attach to here (`--function`, BTF, or kallsyms).
    pub function: Option<String>,
}

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

/// Run every read-only check on `root`; `function` is `--function NAME`.
pub fn survey(root: &SystemRoot, function: Option<&str>) -> Survey {
    let mut facts = Facts::default();
    let release = root.read_line("/proc/sys/kernel/osrelease");
    let config = find_config(root, release.as_deref().unwrap_or(""));
    let uname = uname(root, release.clone(), config.found.as_ref().map(|(_, c)| c));

    let system = system(root, &uname);
    let kernel = kernel(&uname, &mut facts);
    let mut config_section = config_section(&config, uname.machine.as_deref(), &mut facts);
    let status_text = root.read_text("/proc/self/status").unwrap_or_default();
    let privileges = privileges(root, &status_text, &mut facts);
    let kallsyms = root
        .read("/proc/kallsyms")
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let (btf_section, function) = btf_section(root, function, kallsyms.as_deref().ok(), &mut facts);
    let tracing = tracing(root, function.as_deref(), &kallsyms, &mut facts);
    if let Some((path, _)) = &config.found {
        overrule_stale_config(&mut config_section, path, &mut facts);
    }

    let sections = vec![
        system,
        kernel,
        config_section,
        btf_section,
        tracing,
        privileges,
    ];
    Survey {
        sections,
        facts,
        function,
    }
}

fn uname(root: &SystemRoot, release: Option<String>, config: Option<&KernelConfig>) -> Uname {
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

fn system(root: &SystemRoot, uname: &Uname) -> Section {
    let mut items = Vec::new();
    let kernel = match (&uname.ostype, &uname.release, &uname.version) {
        (ostype, Some(release), version) => Item::new(
            "system.kernel",
            "kernel (uname -srv)",
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
        (_, None, _) => Item::new(
            "system.kernel",
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
            "system.machine",
            "machine (uname -m)",
            Status::Info,
            format!("{machine} (from {})", uname.machine_source),
        ),
        None => Item::new(
            "system.machine",
            "machine (uname -m)",
            Status::Warn,
            "unknown",
        )
        .advice("a snapshot needs /proc/sys/kernel/arch or a kernel config (see doctor/README.md)"),
    });
    let distribution = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|path| {
            root.read_text(path)
                .ok()
                .and_then(|text| os_release::pretty_name(&os_release::parse(&text)))
        });
    items.push(Item::new(
        "system.distribution",
        "distribution",
        Status::Info,
        distribution.unwrap_or_else(|| "unknown (no /etc/os-release)".to_string()),
    ));
    let hints = environment_hints(root, uname);
    items.push(Item::new(
        "system.environment",
        "environment",
        Status::Info,
        if hints.is_empty() {
            "no container, WSL or VM hints".to_string()
        } else {
            hints.join("; ")
        },
    ));
    Section::new("system", "System", items)
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

fn kernel(uname: &Uname, facts: &mut Facts) -> Section {
    let version = uname
        .release
        .as_deref()
        .and_then(failures::parse_kernel_version);
    facts.kernel_version = version;
    facts.arch = uname.machine.clone();
    let mut items = Vec::new();
    let (min_major, min_minor) = failures::LESSONS_MIN_VERSION;
    items.push(match version {
        Some(v) if v >= failures::LESSONS_MIN_VERSION => Item::new(
            "kernel.version",
            "version",
            Status::Ok,
            format!(
                "{}.{} (the lessons need >= {min_major}.{min_minor})",
                v.0, v.1
            ),
        ),
        Some(v) => Item::new(
            "kernel.version",
            "version",
            Status::Fail,
            format!(
                "{}.{} (the lessons need >= {min_major}.{min_minor})",
                v.0, v.1
            ),
        )
        .failure("kernel-too-old", Probe::Kprobe),
        None => Item::new(
            "kernel.version",
            "version",
            Status::Warn,
            format!("cannot parse {:?}", uname.release.as_deref().unwrap_or("")),
        )
        .advice("check `uname -r` by hand: the lessons need >= 5.8"),
    });
    items.push(Item::new(
        "kernel.kprobe",
        "kprobe/kretprobe",
        Status::Ok,
        "any architecture, any version the lessons run on",
    ));
    let fentry = match (uname.machine.as_deref(), version) {
        (Some(arch), Some(v)) => match failures::fentry_needs(arch) {
            Some(needs) => {
                let (major, minor) = needs.min_version;
                let about = if needs.approximate { "about " } else { "" };
                let value = format!("{arch} needs {about}>= {major}.{minor}: {}", needs.why);
                match (v >= needs.min_version, needs.approximate) {
                    (true, _) => Item::new("kernel.fentry", "fentry/fexit", Status::Ok, value),
                    (false, false) => Item::new("kernel.fentry", "fentry/fexit", Status::Fail, value)
                        .failure("fentry-not-supported", Probe::Fentry),
                    (false, true) => Item::new("kernel.fentry", "fentry/fexit", Status::Warn, value)
                        .advice("the version is approximate: only the live check (`sudo unlink-doctor`) tells"),
                }
            }
            None => Item::new(
                "kernel.fentry",
                "fentry/fexit",
                Status::Warn,
                format!("{arch}: no known BPF trampoline support"),
            )
            .advice("only the live check (`sudo unlink-doctor`) tells"),
        },
        _ => Item::new(
            "kernel.fentry",
            "fentry/fexit",
            Status::Skipped,
            "unknown architecture or version",
        ),
    };
    items.push(fentry);
    Section::new("kernel", "Kernel version", items)
}

/// The config that was found, and what was wrong with candidates that exist but did not parse.
pub struct ConfigSearch {
    pub found: Option<(String, KernelConfig)>,
    pub unusable: Vec<(String, String)>,
    pub tried: Vec<String>,
}

pub fn find_config(root: &SystemRoot, release: &str) -> ConfigSearch {
    let mut search = ConfigSearch {
        found: None,
        unusable: Vec::new(),
        tried: config::candidates(release),
    };
    for path in &search.tried {
        match root.read(path) {
            Ok(bytes) => match config::decode(&bytes) {
                Ok(text) => {
                    search.found = Some((path.clone(), KernelConfig::parse(&text)));
                    break;
                }
                Err(why) => search.unusable.push((path.clone(), why)),
            },
            Err(ReadError::Missing) => {}
            Err(err) => search.unusable.push((path.clone(), err.to_string())),
        }
    }
    search
}

/// A kernel option a lesson depends on.
#[derive(Clone, Copy)]
struct ConfigOption {
    name: &'static str,
    /// The item's stable id.
    id: &'static str,
    /// The catalogue entry when it is not set, and the lesson it breaks; `None`: informational.
    failure: Option<(&'static str, Probe)>,
    needed_by: &'static str,
}

const fn option(
    name: &'static str,
    id: &'static str,
    failure: Option<(&'static str, Probe)>,
    needed_by: &'static str,
) -> ConfigOption {
    ConfigOption {
        name,
        id,
        failure,
        needed_by,
    }
}

const OPTIONS: &[ConfigOption] = &[
    option(
        "BPF",
        "config.bpf",
        Some(("no-bpf-syscall", Probe::Kprobe)),
        "both lessons",
    ),
    option(
        "BPF_SYSCALL",
        "config.bpf_syscall",
        Some(("no-bpf-syscall", Probe::Kprobe)),
        "both lessons: the bpf() system call",
    ),
    option(
        "BPF_JIT",
        "config.bpf_jit",
        Some(("fentry-not-supported", Probe::Fentry)),
        "lesson-03: trampolines are JIT code",
    ),
    option(
        "DEBUG_INFO_BTF",
        "config.debug_info_btf",
        Some(("no-btf", Probe::Kprobe)),
        "both lessons: CO-RE and fentry need kernel BTF",
    ),
    option(
        "KPROBES",
        "config.kprobes",
        Some(("no-kprobes", Probe::Kprobe)),
        "lesson-02",
    ),
    option(
        "KPROBE_EVENTS",
        "config.kprobe_events",
        Some(("no-kprobes", Probe::Kprobe)),
        "lesson-02: the kprobe PMU and kprobe_events",
    ),
    option(
        "BPF_EVENTS",
        "config.bpf_events",
        Some(("no-kprobes", Probe::Kprobe)),
        "lesson-02: BPF programs on kprobes",
    ),
    option(
        "FTRACE",
        "config.ftrace",
        None,
        "tracefs and function tracing",
    ),
    option(
        "FUNCTION_TRACER",
        "config.function_tracer",
        Some(("fentry-busy", Probe::Fentry)),
        "lesson-03",
    ),
    option(
        "DYNAMIC_FTRACE",
        "config.dynamic_ftrace",
        Some(("fentry-busy", Probe::Fentry)),
        "lesson-03",
    ),
    option(
        "DYNAMIC_FTRACE_WITH_DIRECT_CALLS",
        "config.dynamic_ftrace_with_direct_calls",
        Some(("fentry-not-supported", Probe::Fentry)),
        "lesson-03: trampolines on kernel functions",
    ),
];

/// arm64 attaches trampolines through ftrace's argument passing as well.
const ARM64_OPTION: ConfigOption = option(
    "DYNAMIC_FTRACE_WITH_ARGS",
    "config.dynamic_ftrace_with_args",
    Some(("fentry-not-supported", Probe::Fentry)),
    "lesson-03 on arm64 (with direct calls)",
);

fn config_section(search: &ConfigSearch, arch: Option<&str>, facts: &mut Facts) -> Section {
    let mut items = Vec::new();
    for (path, why) in &search.unusable {
        items.push(Item::new(
            "config.unusable",
            format!("config {path}"),
            Status::Warn,
            format!("unusable: {why}"),
        ));
    }
    let Some((path, config)) = &search.found else {
        items.push(
            Item::new("config.source", "kernel config", Status::Warn, format!("none found (tried {})", search.tried.join(", ")))
                .advice("the kernel options cannot be checked; `modprobe configs` may create /proc/config.gz"),
        );
        return Section::new("config", "Kernel config", items);
    };
    items.push(Item::new(
        "config.source",
        "kernel config",
        Status::Ok,
        path.clone(),
    ));
    let on = |name: &str| config.enabled(name);
    facts.config_bpf_syscall = Some(on("BPF") && on("BPF_SYSCALL"));
    facts.config_kprobes = Some(on("KPROBES") && on("KPROBE_EVENTS"));
    facts.config_ftrace = Some(on("FUNCTION_TRACER") && on("DYNAMIC_FTRACE"));
    facts.config_direct_calls = Some(on("DYNAMIC_FTRACE_WITH_DIRECT_CALLS"));
    let mut options = OPTIONS.to_vec();
    if arch == Some("aarch64") {
        options.push(ARM64_OPTION);
    }
    for ConfigOption {
        name,
        id,
        failure,
        needed_by,
    } in options
    {
        let label = format!("CONFIG_{name}");
        let item = match (config.get(name), failure) {
            (Some(value), _) => Item::new(id, label, Status::Ok, value.to_string()),
            (None, Some((failure, probe))) => Item::new(
                id,
                label,
                Status::Fail,
                format!("not set (needed by {needed_by})"),
            )
            .failure(failure, probe),
            (None, None) => Item::new(id, label, Status::Warn, format!("not set ({needed_by})")),
        };
        items.push(item);
    }
    Section::new("config", "Kernel config", items)
}

/// A config that says an option is not set although the running kernel plainly has what
/// it builds (a kprobe PMU, BTF, function tracing) is stale or another kernel's: the running
/// kernel's evidence decides, and the config's items become warnings about the file.
fn overrule_stale_config(section: &mut Section, path: &str, facts: &mut Facts) {
    let ftrace = facts.function_traceable.is_some() || facts.function_tracing_locked;
    let evidence: [(bool, &[&str], &str); 3] = [
        (
            facts.kprobe_pmu || facts.kprobe_events,
            &["KPROBES", "KPROBE_EVENTS"],
            "the kernel has kprobes (kprobe PMU or kprobe_events)",
        ),
        (
            facts.btf,
            &["DEBUG_INFO_BTF"],
            "the kernel has BTF (/sys/kernel/btf/vmlinux)",
        ),
        (
            ftrace,
            &["FTRACE", "FUNCTION_TRACER", "DYNAMIC_FTRACE"],
            "the kernel traces functions (available_filter_functions)",
        ),
    ];
    let mut contradicted = Vec::new();
    let mut items = std::mem::take(&mut section.items);
    for (_, names, why) in evidence.into_iter().filter(|(seen, ..)| *seen) {
        for option in OPTIONS.iter().filter(|o| names.contains(&o.name)) {
            let Some(item) = items.iter_mut().find(|i| i.id == option.id) else {
                continue;
            };
            if item.status == Status::Ok {
                continue;
            }
            *item = Item::new(
                option.id,
                format!("CONFIG_{}", option.name),
                Status::Warn,
                format!("not set in {path}, but {why}"),
            );
            contradicted.push(format!("CONFIG_{}", option.name));
        }
    }
    if contradicted.is_empty() {
        section.items = items;
        return;
    }
    if facts.kprobe_pmu || facts.kprobe_events {
        facts.config_kprobes = Some(true);
    }
    if ftrace {
        facts.config_ftrace = Some(true);
    }
    items.push(
        Item::new(
            "config.stale",
            "kernel config",
            Status::Warn,
            format!(
                "{path} contradicts the running kernel ({}): stale, or another kernel's; the running kernel decides",
                contradicted.join(", ")
            ),
        )
        .advice("find the running kernel's own config (`/proc/config.gz` after `sudo modprobe configs`, or /boot/config-$(uname -r))"),
    );
    *section = Section::new(section.id, section.title, items);
}

/// The BTF section; also picks the function when `--function` was not given.
fn btf_section(
    root: &SystemRoot,
    requested: Option<&str>,
    kallsyms: Option<&str>,
    facts: &mut Facts,
) -> (Section, Option<String>) {
    let mut items = Vec::new();
    let path = BTF_PATH;
    let btf = match root.read(path) {
        Ok(bytes) => btf::parse(&bytes),
        Err(err) => Err(err.to_string()),
    };
    facts.btf = btf.is_ok();
    let in_kallsyms = |name: &str| kallsyms.and_then(|text| kallsyms::lookup(text, name));
    let btf = match btf {
        Ok(btf) => {
            items.push(Item::new("btf.vmlinux", path, Status::Ok, "present"));
            btf
        }
        Err(why) => {
            let missing = !root.exists(path);
            let value = if missing {
                "missing".to_string()
            } else {
                format!("unusable: {why}")
            };
            items.push(
                Item::new("btf.vmlinux", path, Status::Fail, value)
                    .failure("no-btf", Probe::Fentry),
            );
            let function = requested.map(str::to_string).or_else(|| {
                UNLINK_FUNCTIONS
                    .iter()
                    .find_map(|name| in_kallsyms(name))
                    .map(|s| base_name(&s).to_string())
            });
            return (Section::new("btf", "BTF", items), function);
        }
    };
    let found = match requested {
        Some(name) => btf::function(&btf, name)
            .ok_or_else(|| format!("{name} (given with --function) is not in BTF")),
        None => UNLINK_FUNCTIONS
            .iter()
            .find_map(|name| btf::function(&btf, name))
            .ok_or_else(|| format!("neither {} is in BTF", UNLINK_FUNCTIONS.join(" nor "))),
    };
    facts.function_in_btf = Some(found.is_ok());
    let function = match found {
        Ok(function) => {
            items.push(Item::new(
                "btf.function",
                "unlink function",
                Status::Ok,
                function.prototype.clone(),
            ));
            items.push(match &function.mismatch {
                None => Item::new("btf.prototype", "matches the lessons", Status::Ok, "(int dfd, struct filename *name)"),
                Some(why) => Item::new("btf.prototype", "matches the lessons", Status::Warn, why.clone())
                    .advice("the programs may read wrong arguments: report it with `unlink-doctor --report`"),
            });
            Some(function.name)
        }
        Err(why) => {
            items.push(
                Item::new("btf.function", "unlink function", Status::Fail, why)
                    .failure("function-not-found", Probe::Fentry),
            );
            requested.map(str::to_string).or_else(|| {
                UNLINK_FUNCTIONS
                    .iter()
                    .find_map(|name| in_kallsyms(name))
                    .map(|s| base_name(&s).to_string())
            })
        }
    };
    (Section::new("btf", "BTF", items), function)
}

fn tracing(
    root: &SystemRoot,
    function: Option<&str>,
    kallsyms: &Result<String, ReadError>,
    facts: &mut Facts,
) -> Section {
    let mut items = Vec::new();
    let mounts = mountinfo::parse(&root.read_text("/proc/self/mountinfo").unwrap_or_default());
    let tracefs = mountinfo::mount_points(&mounts, "tracefs");
    let debugfs = mountinfo::mount_points(&mounts, "debugfs");
    // tracefs's own mount point first, then the one debugfs provides.
    let tracing_dir = tracefs
        .iter()
        .map(|p| p.to_string())
        .chain(debugfs.iter().map(|p| format!("{p}/tracing")))
        .find(|dir| {
            root.exists(&format!("{dir}/trace_pipe"))
                || root.exists(&format!("{dir}/tracing_on"))
                || tracefs.contains(&dir.as_str())
        });
    items.push(match tracefs.is_empty() {
        false => Item::new("tracing.tracefs", "tracefs", Status::Ok, tracefs.join(", ")),
        true => Item::new("tracing.tracefs", "tracefs", Status::Warn, "not mounted")
            .failure("tracefs-unavailable", Probe::Kprobe),
    });
    items.push(match debugfs.is_empty() {
        false => Item::new("tracing.debugfs", "debugfs", Status::Ok, debugfs.join(", ")),
        true => Item::new(
            "tracing.debugfs",
            "debugfs",
            Status::Info,
            "not mounted (only the kprobe blacklist lives there)",
        ),
    });

    let function_label = function.unwrap_or("the unlink function");
    // kallsyms: what a kprobe resolves its symbol against.
    facts.kprobe_pmu = root.exists("/sys/bus/event_source/devices/kprobe");
    items.push(match kallsyms {
        Ok(text) => match function.and_then(|f| kallsyms::lookup(text, f)) {
            Some(symbol) => {
                facts.function_in_kallsyms = Some(true);
                Item::new(
                    "tracing.kallsyms",
                    "/proc/kallsyms",
                    Status::Ok,
                    format!("{symbol} is a text symbol"),
                )
            }
            None => {
                facts.function_in_kallsyms = Some(false);
                Item::new(
                    "tracing.kallsyms",
                    "/proc/kallsyms",
                    Status::Fail,
                    format!("no text symbol {function_label}"),
                )
                .failure("function-not-found", Probe::Kprobe)
            }
        },
        Err(err) => Item::new(
            "tracing.kallsyms",
            "/proc/kallsyms",
            Status::Warn,
            format!("unreadable: {err}"),
        ),
    });
    items.push(match facts.kprobe_pmu {
        true => Item::new(
            "tracing.kprobe_pmu",
            "kprobe PMU",
            Status::Ok,
            "/sys/bus/event_source/devices/kprobe",
        ),
        false => Item::new(
            "tracing.kprobe_pmu",
            "kprobe PMU",
            Status::Fail,
            "missing (/sys/bus/event_source/devices/kprobe)",
        )
        .failure("no-kprobes", Probe::Kprobe),
    });
    let kprobe_events = tracing_dir
        .as_ref()
        .map(|dir| format!("{dir}/kprobe_events"));
    facts.kprobe_events = kprobe_events.as_ref().is_some_and(|path| root.exists(path));
    items.push(match (&kprobe_events, facts.kprobe_events) {
        (Some(path), true) => Item::new(
            "tracing.kprobe_events",
            "kprobe_events",
            Status::Ok,
            path.clone(),
        ),
        (Some(path), false) => Item::new(
            "tracing.kprobe_events",
            "kprobe_events",
            Status::Info,
            format!("{path} missing"),
        ),
        (None, _) => Item::new(
            "tracing.kprobe_events",
            "kprobe_events",
            Status::Skipped,
            "tracefs not mounted",
        ),
    });
    if !facts.kprobe_pmu && facts.kprobe_events {
        // libbpf falls back to the legacy interface: lesson-02 still works.
        if let Some(item) = items.iter_mut().find(|i| i.id == "tracing.kprobe_pmu") {
            *item = Item::new(
                "tracing.kprobe_pmu",
                "kprobe PMU",
                Status::Warn,
                "missing; libbpf will use kprobe_events instead",
            );
        }
    }

    let privileged = facts.privileged;
    let filter_functions = tracing_dir
        .as_ref()
        .map(|dir| format!("{dir}/available_filter_functions"));
    items.push(match (&filter_functions, function) {
        (None, _) => Item::new(
            "tracing.filter_functions",
            "available_filter_functions",
            Status::Skipped,
            "tracefs not mounted",
        )
        .advice("mount it to check: `sudo mount -t tracefs nodev /sys/kernel/tracing`"),
        (Some(_), None) => Item::new(
            "tracing.filter_functions",
            "available_filter_functions",
            Status::Skipped,
            "no function to look for",
        ),
        (Some(path), Some(function)) => match root.read_text(path) {
            Ok(text) => {
                let listed = text
                    .lines()
                    .any(|line| line.split_whitespace().next().map(base_name) == Some(function));
                facts.function_traceable = Some(listed);
                match listed {
                    true => Item::new(
                        "tracing.filter_functions",
                        "available_filter_functions",
                        Status::Ok,
                        format!("lists {function}"),
                    ),
                    false => Item::new(
                        "tracing.filter_functions",
                        "available_filter_functions",
                        Status::Fail,
                        format!("does not list {function} (notrace)"),
                    )
                    .failure("not-traceable", Probe::Fentry),
                }
            }
            Err(err) if err.is_permission() && privileged => {
                facts.function_tracing_locked = true;
                Item::new(
                    "tracing.filter_functions",
                    "available_filter_functions",
                    Status::Fail,
                    format!("unreadable although privileged: {err}"),
                )
                .failure("tracing-refused", Probe::Fentry)
            }
            Err(err) if err.is_permission() => Item::new(
                "tracing.filter_functions",
                "available_filter_functions",
                Status::Skipped,
                format!("unreadable: {err}"),
            )
            .advice("needs root: `sudo unlink-doctor`"),
            Err(err) => Item::new(
                "tracing.filter_functions",
                "available_filter_functions",
                Status::Warn,
                format!("unreadable: {err}"),
            ),
        },
    });
    let blacklist = debugfs
        .first()
        .map(|dir| format!("{dir}/kprobes/blacklist"));
    items.push(match (&blacklist, function) {
        (None, _) => Item::new(
            "tracing.kprobe_blacklist",
            "kprobe blacklist",
            Status::Skipped,
            "debugfs not mounted",
        ),
        (Some(_), None) => Item::new(
            "tracing.kprobe_blacklist",
            "kprobe blacklist",
            Status::Skipped,
            "no function to look for",
        ),
        (Some(path), Some(function)) => match root.read_text(path) {
            Ok(text) => {
                let listed = text
                    .lines()
                    .any(|line| line.split_whitespace().nth(1) == Some(function));
                facts.kprobe_blacklisted = Some(listed);
                match listed {
                    false => Item::new(
                        "tracing.kprobe_blacklist",
                        "kprobe blacklist",
                        Status::Ok,
                        format!("{function} not listed"),
                    ),
                    true => Item::new(
                        "tracing.kprobe_blacklist",
                        "kprobe blacklist",
                        Status::Fail,
                        format!("{function} is listed"),
                    )
                    .failure("not-traceable", Probe::Kprobe),
                }
            }
            Err(ReadError::Missing) => Item::new(
                "tracing.kprobe_blacklist",
                "kprobe blacklist",
                Status::Info,
                format!("{path} missing"),
            ),
            Err(err) if err.is_permission() && !privileged => Item::new(
                "tracing.kprobe_blacklist",
                "kprobe blacklist",
                Status::Skipped,
                format!("unreadable: {err}"),
            )
            .advice("needs root: `sudo unlink-doctor`"),
            Err(err) => Item::new(
                "tracing.kprobe_blacklist",
                "kprobe blacklist",
                Status::Warn,
                format!("unreadable: {err}"),
            ),
        },
    });
    items.push(
        match tracing_dir
            .as_ref()
            .map(|dir| root.read_line(&format!("{dir}/tracing_on")))
        {
            None => Item::new(
                "tracing.tracing_on",
                "tracing_on",
                Status::Skipped,
                "tracefs not mounted",
            ),
            Some(Some(on)) if on == "1" => {
                Item::new("tracing.tracing_on", "tracing_on", Status::Ok, "1")
            }
            Some(Some(off)) => Item::new("tracing.tracing_on", "tracing_on", Status::Warn, off)
                .advice(
                "--printk output stays silent: `echo 1 | sudo tee /sys/kernel/tracing/tracing_on`",
            ),
            Some(None) => Item::new(
                "tracing.tracing_on",
                "tracing_on",
                Status::Skipped,
                "unreadable (needs root)",
            ),
        },
    );
    let patches = root.list("/sys/kernel/livepatch");
    if !patches.is_empty() {
        items.push(
            Item::new(
                "tracing.livepatch",
                "livepatches",
                Status::Warn,
                patches.join(", "),
            )
            .advice("a livepatch on the function makes kprobes fail with EBUSY"),
        );
    }
    Section::new("tracing", "Tracing", items)
}

const CAP_SYS_RESOURCE: u32 = 24;

fn privileges(root: &SystemRoot, status: &str, facts: &mut Facts) -> Section {
    let mut items = Vec::new();
    let euid: Option<u32> = failures::status_field(status, "Uid:")
        .and_then(|uids| uids.split_whitespace().nth(1)?.parse().ok());
    facts.euid = euid;
    items.push(match euid {
        Some(0) => Item::new("privileges.euid", "effective uid", Status::Ok, "0 (root)"),
        Some(uid) => Item::new(
            "privileges.euid",
            "effective uid",
            Status::Warn,
            format!("{uid} (not root)"),
        )
        .advice("the lessons and the live check need root: `sudo unlink-doctor`"),
        None => Item::new(
            "privileges.euid",
            "effective uid",
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
            "privileges.capabilities",
            "effective capabilities",
            Status::Ok,
            format!("{} (CapEff {caps:016x})", cap_names(caps)),
        ),
        Some(caps) => {
            let item = Item::new(
                "privileges.capabilities",
                "effective capabilities",
                Status::Fail,
                format!("{} (CapEff {caps:016x})", cap_names(caps)),
            );
            match euid {
                Some(0) => item.failure("container-restricted", Probe::Kprobe),
                _ => item.failure("not-privileged", Probe::Kprobe),
            }
        }
        None => Item::new(
            "privileges.capabilities",
            "effective capabilities",
            Status::Warn,
            "unknown (no CapEff in /proc/self/status)",
        ),
    });
    items.push(match facts.user_namespace {
        false => Item::new(
            "privileges.user_namespace",
            "user namespace",
            Status::Ok,
            "initial",
        ),
        true => Item::new(
            "privileges.user_namespace",
            "user namespace",
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
        Some(0) => Item::new("privileges.seccomp", "seccomp", Status::Ok, "off"),
        Some(2) => Item::new(
            "privileges.seccomp",
            "seccomp",
            Status::Warn,
            "filter (mode 2)",
        )
        .advice("a container's seccomp profile can block bpf() with EPERM"),
        Some(mode) => Item::new(
            "privileges.seccomp",
            "seccomp",
            Status::Warn,
            format!("mode {mode}"),
        ),
        None => Item::new("privileges.seccomp", "seccomp", Status::Info, "unknown"),
    });
    for (id, path, note) in [
        (
            "privileges.unprivileged_bpf_disabled",
            "/proc/sys/kernel/unprivileged_bpf_disabled",
            "tracing programs need privileges whatever it says",
        ),
        (
            "privileges.perf_event_paranoid",
            "/proc/sys/kernel/perf_event_paranoid",
            "root and CAP_PERFMON are exempt",
        ),
    ] {
        let label = path.rsplit('/').next().unwrap_or(path);
        items.push(match root.read_line(path) {
            Some(value) => Item::new(id, label, Status::Info, format!("{value} ({note})")),
            None => Item::new(id, label, Status::Info, "unknown"),
        });
    }
    let lockdown = root.read_line("/sys/kernel/security/lockdown");
    facts.lockdown_confidentiality = lockdown
        .as_deref()
        .is_some_and(|l| l.contains("[confidentiality]"));
    items.push(match lockdown {
        Some(mode) if facts.lockdown_confidentiality => {
            Item::new("privileges.lockdown", "lockdown", Status::Fail, mode)
                .failure("lockdown", Probe::Kprobe)
        }
        Some(mode) => Item::new("privileges.lockdown", "lockdown", Status::Ok, mode),
        None => Item::new(
            "privileges.lockdown",
            "lockdown",
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
            "privileges.memlock",
            "RLIMIT_MEMLOCK",
            Status::Info,
            format!("{} (not charged since 5.11)", shown(limit.soft)),
        ),
        (Some(limit), true) => match facts.memlock_limit {
            Some(bytes) if bytes < failures::MEMLOCK_NEEDED => Item::new(
                "privileges.memlock",
                "RLIMIT_MEMLOCK",
                Status::Fail,
                format!("{} and cannot be raised", shown(limit.soft)),
            )
            .failure("memlock-limit", Probe::Kprobe),
            _ => Item::new(
                "privileges.memlock",
                "RLIMIT_MEMLOCK",
                Status::Ok,
                format!("{} (libbpf raises it as needed)", shown(limit.soft)),
            ),
        },
        (None, _) => Item::new(
            "privileges.memlock",
            "RLIMIT_MEMLOCK",
            Status::Info,
            "unknown",
        ),
    });
    Section::new("privileges", "Privileges", items)
}
