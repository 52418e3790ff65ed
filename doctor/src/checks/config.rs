//! The Kernel config section: which config file was found, and the options the lessons need.

use unlink_common::failures::{Facts, Probe};

use crate::check_ids::{CheckId, SectionId};
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
    /// Its label is `CONFIG_` and the option's name.
    check: CheckId,
    /// The catalogue entry when it is not set, and the lesson it breaks; `None`: informational.
    failure: Option<(&'static str, Probe)>,
    needed_by: &'static str,
}

const fn option(
    check: CheckId,
    failure: Option<(&'static str, Probe)>,
    needed_by: &'static str,
) -> ConfigOption {
    ConfigOption {
        check,
        failure,
        needed_by,
    }
}

const OPTIONS: &[ConfigOption] = &[
    option(
        CheckId::ConfigBpf,
        Some(("no-bpf-syscall", Probe::Kprobe)),
        "both lessons",
    ),
    option(
        CheckId::ConfigBpfSyscall,
        Some(("no-bpf-syscall", Probe::Kprobe)),
        "both lessons: the bpf() system call",
    ),
    option(
        CheckId::ConfigBpfJit,
        Some(("fentry-not-supported", Probe::Fentry)),
        "lesson-03: trampolines are JIT code",
    ),
    option(
        CheckId::ConfigDebugInfoBtf,
        Some(("no-btf", Probe::Kprobe)),
        "both lessons: CO-RE and fentry need kernel BTF",
    ),
    option(
        CheckId::ConfigKprobes,
        Some(("no-kprobes", Probe::Kprobe)),
        "lesson-02",
    ),
    option(
        CheckId::ConfigKprobeEvents,
        Some(("no-kprobes", Probe::Kprobe)),
        "lesson-02: the kprobe PMU and kprobe_events",
    ),
    option(
        CheckId::ConfigBpfEvents,
        Some(("no-kprobes", Probe::Kprobe)),
        "lesson-02: BPF programs on kprobes",
    ),
    option(CheckId::ConfigFtrace, None, "tracefs and function tracing"),
    option(
        CheckId::ConfigFunctionTracer,
        Some(("fentry-busy", Probe::Fentry)),
        "lesson-03",
    ),
    option(
        CheckId::ConfigDynamicFtrace,
        Some(("fentry-busy", Probe::Fentry)),
        "lesson-03",
    ),
    option(
        CheckId::ConfigDynamicFtraceWithDirectCalls,
        Some(("fentry-not-supported", Probe::Fentry)),
        "lesson-03: trampolines on kernel functions",
    ),
];

impl ConfigOption {
    /// `BPF` for `CONFIG_BPF`, as the config file spells it without the prefix.
    fn name(self) -> &'static str {
        self.check.label().trim_start_matches("CONFIG_")
    }
}

/// arm64 attaches trampolines through ftrace's argument passing as well.
const ARM64_OPTION: ConfigOption = option(
    CheckId::ConfigDynamicFtraceWithArgs,
    Some(("fentry-not-supported", Probe::Fentry)),
    "lesson-03 on arm64 (with direct calls)",
);

pub fn section(search: &ConfigSearch, arch: Option<&str>, facts: &mut Facts) -> Section {
    let mut items = Vec::new();
    for (path, why) in &search.unusable {
        items.push(Item::labelled(
            CheckId::ConfigUnusable,
            format!("{} {path}", CheckId::ConfigUnusable.label()),
            Status::Warn,
            format!("unusable: {why}"),
        ));
    }
    let Some((path, config)) = &search.found else {
        items.push(
            Item::new(CheckId::ConfigSource, Status::Warn, format!("none found (tried {})", search.tried.join(", ")))
                .advice("the kernel options cannot be checked; `modprobe configs` may create /proc/config.gz"),
        );
        return Section::new(SectionId::Config, items);
    };
    items.push(Item::new(CheckId::ConfigSource, Status::Ok, path.clone()));
    let on = |name: &str| config.enabled(name);
    facts.config_bpf_syscall = Some(on("BPF") && on("BPF_SYSCALL"));
    facts.config_kprobes = Some(on("KPROBES") && on("KPROBE_EVENTS"));
    facts.config_ftrace = Some(on("FUNCTION_TRACER") && on("DYNAMIC_FTRACE"));
    facts.config_direct_calls = Some(on("DYNAMIC_FTRACE_WITH_DIRECT_CALLS"));
    let mut options = OPTIONS.to_vec();
    if arch == Some("aarch64") {
        options.push(ARM64_OPTION);
    }
    for option in options {
        let ConfigOption {
            check,
            failure,
            needed_by,
        } = option;
        let item = match (config.get(option.name()), failure) {
            (Some(value), _) => Item::new(check, Status::Ok, value.to_string()),
            (None, Some((failure, probe))) => Item::new(
                check,
                Status::Fail,
                format!("not set (needed by {needed_by})"),
            )
            .failure(failure, probe),
            (None, None) => Item::new(check, Status::Warn, format!("not set ({needed_by})")),
        };
        items.push(item);
    }
    Section::new(SectionId::Config, items)
}

/// A config that says an option is not set although the running kernel plainly has what
/// it builds (a kprobe PMU, BTF, function tracing) is stale or another kernel's: the running
/// kernel's evidence decides, and the config's items become warnings about the file.
pub fn overrule_stale(section: &mut Section, path: &str, facts: &mut Facts) {
    let ftrace = facts.function_traceable.is_some() || facts.function_tracing_locked;
    let evidence: [(bool, &[CheckId], &str); 3] = [
        (
            facts.kprobe_pmu || facts.kprobe_events,
            &[CheckId::ConfigKprobes, CheckId::ConfigKprobeEvents],
            "the kernel has kprobes (kprobe PMU or kprobe_events)",
        ),
        (
            facts.btf,
            &[CheckId::ConfigDebugInfoBtf],
            "the kernel has BTF (/sys/kernel/btf/vmlinux)",
        ),
        (
            ftrace,
            &[
                CheckId::ConfigFtrace,
                CheckId::ConfigFunctionTracer,
                CheckId::ConfigDynamicFtrace,
            ],
            "the kernel traces functions (available_filter_functions)",
        ),
    ];
    let mut contradicted = Vec::new();
    let mut items = std::mem::take(&mut section.items);
    for (_, checks, why) in evidence.into_iter().filter(|(seen, ..)| *seen) {
        for check in OPTIONS
            .iter()
            .map(|o| o.check)
            .filter(|c| checks.contains(c))
        {
            let Some(item) = items.iter_mut().find(|i| i.id == check) else {
                continue;
            };
            if item.status == Status::Ok {
                continue;
            }
            *item = Item::new(check, Status::Warn, format!("not set in {path}, but {why}"));
            contradicted.push(check.label());
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
        Item::new(CheckId::ConfigStale, Status::Warn,
            format!(
                "{path} contradicts the running kernel ({}): stale, or another kernel's; the running kernel decides",
                contradicted.join(", ")
            ),
        )
        .advice("find the running kernel's own config (`/proc/config.gz` after `sudo modprobe configs`, or /boot/config-$(uname -r))"),
    );
    *section = Section::new(section.id, items);
}
