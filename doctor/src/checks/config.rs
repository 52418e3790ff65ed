//! The Kernel config section: which config file was found, and the options the lessons need.

use unlink_common::failures::{Facts, Probe};

use crate::parse::config::{self, KernelConfig};
use crate::report::{Item, Section, Status};
use crate::sysroot::{ReadError, SystemRoot};

/// The config that was found, and what was wrong with candidates that exist but did not parse.
pub struct ConfigSearch {
    pub found: Option<(String, KernelConfig)>,
    pub unusable: Vec<(String, String)>,
    pub tried: Vec<String>,
}

pub fn find(root: &SystemRoot, release: &str) -> ConfigSearch {
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

pub fn section(search: &ConfigSearch, arch: Option<&str>, facts: &mut Facts) -> Section {
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
pub fn overrule_stale(section: &mut Section, path: &str, facts: &mut Facts) {
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
