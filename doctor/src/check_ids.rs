//! The report's sections and items, each id written once with its title or label: the
//! compiler checks every use, and the JSON's stable ids (doctor/README.md) come from here.

use serde::{Serialize, Serializer};

use crate::sysroot::BTF_PATH;

/// A section of the report, in the order it is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionId {
    System,
    Kernel,
    Config,
    Btf,
    Tracing,
    Privileges,
    Live,
}

impl SectionId {
    /// The JSON's `sections[].id` and the text's heading.
    const fn id_and_title(self) -> (&'static str, &'static str) {
        match self {
            SectionId::System => ("system", "System"),
            SectionId::Kernel => ("kernel", "Kernel version"),
            SectionId::Config => ("config", "Kernel config"),
            SectionId::Btf => ("btf", "BTF"),
            SectionId::Tracing => ("tracing", "Tracing"),
            SectionId::Privileges => ("privileges", "Privileges"),
            SectionId::Live => ("live", "Live check"),
        }
    }

    pub const fn id(self) -> &'static str {
        self.id_and_title().0
    }

    pub const fn title(self) -> &'static str {
        self.id_and_title().1
    }
}

/// One item of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckId {
    SystemKernel,
    SystemMachine,
    SystemDistribution,
    SystemEnvironment,
    KernelVersion,
    KernelKprobe,
    KernelFentry,
    ConfigUnusable,
    ConfigSource,
    ConfigStale,
    ConfigBpf,
    ConfigBpfSyscall,
    ConfigBpfJit,
    ConfigDebugInfoBtf,
    ConfigKprobes,
    ConfigKprobeEvents,
    ConfigBpfEvents,
    ConfigFtrace,
    ConfigFunctionTracer,
    ConfigDynamicFtrace,
    ConfigDynamicFtraceWithDirectCalls,
    ConfigDynamicFtraceWithArgs,
    BtfVmlinux,
    BtfFunction,
    BtfPrototype,
    TracingTracefs,
    TracingDebugfs,
    TracingKallsyms,
    TracingKprobePmu,
    TracingKprobeEvents,
    TracingFilterFunctions,
    TracingKprobeBlacklist,
    TracingTracingOn,
    TracingLivepatch,
    PrivilegesEuid,
    PrivilegesCapabilities,
    PrivilegesUserNamespace,
    PrivilegesSeccomp,
    PrivilegesUnprivilegedBpfDisabled,
    PrivilegesPerfEventParanoid,
    PrivilegesLockdown,
    PrivilegesMemlock,
    LiveKprobe,
    LiveFentry,
}

impl CheckId {
    /// The stable id (`<section>.<name>`, the JSON's `items[].id`) and the label the item
    /// shows; a few items add to it (the config file's path, the function's name).
    const fn id_and_label(self) -> (&'static str, &'static str) {
        match self {
            CheckId::SystemKernel => ("system.kernel", "kernel (uname -srv)"),
            CheckId::SystemMachine => ("system.machine", "machine (uname -m)"),
            CheckId::SystemDistribution => ("system.distribution", "distribution"),
            CheckId::SystemEnvironment => ("system.environment", "environment"),
            CheckId::KernelVersion => ("kernel.version", "version"),
            CheckId::KernelKprobe => ("kernel.kprobe", "kprobe/kretprobe"),
            CheckId::KernelFentry => ("kernel.fentry", "fentry/fexit"),
            CheckId::ConfigUnusable => ("config.unusable", "config"),
            CheckId::ConfigSource => ("config.source", "kernel config"),
            CheckId::ConfigStale => ("config.stale", "kernel config"),
            CheckId::ConfigBpf => ("config.bpf", "CONFIG_BPF"),
            CheckId::ConfigBpfSyscall => ("config.bpf_syscall", "CONFIG_BPF_SYSCALL"),
            CheckId::ConfigBpfJit => ("config.bpf_jit", "CONFIG_BPF_JIT"),
            CheckId::ConfigDebugInfoBtf => ("config.debug_info_btf", "CONFIG_DEBUG_INFO_BTF"),
            CheckId::ConfigKprobes => ("config.kprobes", "CONFIG_KPROBES"),
            CheckId::ConfigKprobeEvents => ("config.kprobe_events", "CONFIG_KPROBE_EVENTS"),
            CheckId::ConfigBpfEvents => ("config.bpf_events", "CONFIG_BPF_EVENTS"),
            CheckId::ConfigFtrace => ("config.ftrace", "CONFIG_FTRACE"),
            CheckId::ConfigFunctionTracer => ("config.function_tracer", "CONFIG_FUNCTION_TRACER"),
            CheckId::ConfigDynamicFtrace => ("config.dynamic_ftrace", "CONFIG_DYNAMIC_FTRACE"),
            CheckId::ConfigDynamicFtraceWithDirectCalls => (
                "config.dynamic_ftrace_with_direct_calls",
                "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS",
            ),
            CheckId::ConfigDynamicFtraceWithArgs => (
                "config.dynamic_ftrace_with_args",
                "CONFIG_DYNAMIC_FTRACE_WITH_ARGS",
            ),
            CheckId::BtfVmlinux => ("btf.vmlinux", BTF_PATH),
            CheckId::BtfFunction => ("btf.function", "unlink function"),
            CheckId::BtfPrototype => ("btf.prototype", "matches the lessons"),
            CheckId::TracingTracefs => ("tracing.tracefs", "tracefs"),
            CheckId::TracingDebugfs => ("tracing.debugfs", "debugfs"),
            CheckId::TracingKallsyms => ("tracing.kallsyms", "/proc/kallsyms"),
            CheckId::TracingKprobePmu => ("tracing.kprobe_pmu", "kprobe PMU"),
            CheckId::TracingKprobeEvents => ("tracing.kprobe_events", "kprobe_events"),
            CheckId::TracingFilterFunctions => {
                ("tracing.filter_functions", "available_filter_functions")
            }
            CheckId::TracingKprobeBlacklist => ("tracing.kprobe_blacklist", "kprobe blacklist"),
            CheckId::TracingTracingOn => ("tracing.tracing_on", "tracing_on"),
            CheckId::TracingLivepatch => ("tracing.livepatch", "livepatches"),
            CheckId::PrivilegesEuid => ("privileges.euid", "effective uid"),
            CheckId::PrivilegesCapabilities => {
                ("privileges.capabilities", "effective capabilities")
            }
            CheckId::PrivilegesUserNamespace => ("privileges.user_namespace", "user namespace"),
            CheckId::PrivilegesSeccomp => ("privileges.seccomp", "seccomp"),
            CheckId::PrivilegesUnprivilegedBpfDisabled => (
                "privileges.unprivileged_bpf_disabled",
                "unprivileged_bpf_disabled",
            ),
            CheckId::PrivilegesPerfEventParanoid => {
                ("privileges.perf_event_paranoid", "perf_event_paranoid")
            }
            CheckId::PrivilegesLockdown => ("privileges.lockdown", "lockdown"),
            CheckId::PrivilegesMemlock => ("privileges.memlock", "RLIMIT_MEMLOCK"),
            CheckId::LiveKprobe => ("live.kprobe", "kprobe + kretprobe"),
            CheckId::LiveFentry => ("live.fentry", "fentry + fexit"),
        }
    }

    pub const fn id(self) -> &'static str {
        self.id_and_label().0
    }

    pub const fn label(self) -> &'static str {
        self.id_and_label().1
    }
}

impl Serialize for SectionId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

impl Serialize for CheckId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unlink_common::failures::Probe;
    use CheckId::*;

    const SECTIONS: [SectionId; 7] = [
        SectionId::System,
        SectionId::Kernel,
        SectionId::Config,
        SectionId::Btf,
        SectionId::Tracing,
        SectionId::Privileges,
        SectionId::Live,
    ];

    const CHECKS: [CheckId; 44] = [
        SystemKernel,
        SystemMachine,
        SystemDistribution,
        SystemEnvironment,
        KernelVersion,
        KernelKprobe,
        KernelFentry,
        ConfigUnusable,
        ConfigSource,
        ConfigStale,
        ConfigBpf,
        ConfigBpfSyscall,
        ConfigBpfJit,
        ConfigDebugInfoBtf,
        ConfigKprobes,
        ConfigKprobeEvents,
        ConfigBpfEvents,
        ConfigFtrace,
        ConfigFunctionTracer,
        ConfigDynamicFtrace,
        ConfigDynamicFtraceWithDirectCalls,
        ConfigDynamicFtraceWithArgs,
        BtfVmlinux,
        BtfFunction,
        BtfPrototype,
        TracingTracefs,
        TracingDebugfs,
        TracingKallsyms,
        TracingKprobePmu,
        TracingKprobeEvents,
        TracingFilterFunctions,
        TracingKprobeBlacklist,
        TracingTracingOn,
        TracingLivepatch,
        PrivilegesEuid,
        PrivilegesCapabilities,
        PrivilegesUserNamespace,
        PrivilegesSeccomp,
        PrivilegesUnprivilegedBpfDisabled,
        PrivilegesPerfEventParanoid,
        PrivilegesLockdown,
        PrivilegesMemlock,
        LiveKprobe,
        LiveFentry,
    ];

    #[test]
    fn each_id_is_unique_and_names_its_section() {
        let mut seen = std::collections::HashSet::new();
        for check in CHECKS {
            let id = check.id();
            assert!(seen.insert(id), "{check:?}: id {id} used twice");
            let (section, name) = id.split_once('.').expect("<section>.<name>");
            assert!(
                SECTIONS.iter().any(|s| s.id() == section),
                "{check:?}: {id} names no section"
            );
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{check:?}: {id}"
            );
            assert!(!check.label().is_empty(), "{check:?} has no label");
        }
        let sections: std::collections::HashSet<_> = SECTIONS.iter().map(|s| s.id()).collect();
        assert_eq!(sections.len(), SECTIONS.len());
    }

    #[test]
    fn config_labels_are_the_option_and_live_labels_the_programs() {
        for check in CHECKS.iter().filter(|c| c.id().starts_with("config.")) {
            let option = check.label().strip_prefix("CONFIG_");
            match option {
                Some(option) => assert_eq!(
                    check.id(),
                    format!("config.{}", option.to_lowercase()),
                    "{check:?}"
                ),
                None => assert!(
                    matches!(check, ConfigUnusable | ConfigSource | ConfigStale),
                    "{check:?}"
                ),
            }
        }
        for (probe, check) in [(Probe::Kprobe, LiveKprobe), (Probe::Fentry, LiveFentry)] {
            assert_eq!(check.label(), probe.programs().join(" + "));
        }
    }
}
