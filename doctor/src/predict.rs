//! What the read-only facts say about a lesson before it runs, for when the
//! live check cannot: only the doctor predicts, the lessons just run.

use unlink_common::catalogue::{Failure, FailureId};
use unlink_common::facts::{fentry_needs, Facts, LESSONS_MIN_VERSION, MEMLOCK_NEEDED};
use unlink_common::probe::Probe;

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
    let fails = |id: FailureId, because: String| Prediction::Fails {
        failure: id.failure(),
        because,
    };
    let mut missing = Vec::new();

    if facts.config_bpf_syscall == Some(false) {
        return fails(
            FailureId::NoBpfSyscall,
            "CONFIG_BPF_SYSCALL is not set".into(),
        );
    }
    match facts.kernel_version {
        Some(v) if v < LESSONS_MIN_VERSION => {
            return fails(
                FailureId::KernelTooOld,
                format!("kernel {}.{} is older than 5.8", v.0, v.1),
            );
        }
        Some(_) => {}
        None => missing.push("the kernel version (`uname -r` did not parse)".to_string()),
    }
    if !facts.btf {
        return fails(
            FailureId::NoBtf,
            "/sys/kernel/btf/vmlinux is missing".into(),
        );
    }
    if facts.lockdown_confidentiality {
        return fails(
            FailureId::Lockdown,
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
                        FailureId::NoKprobes,
                        format!("no kprobe PMU and no kprobe_events; {config}"),
                    );
                }
            }
            match facts.function_in_kallsyms {
                Some(false) => {
                    return fails(
                        FailureId::FunctionNotFound,
                        "the function is not a text symbol in /proc/kallsyms".into(),
                    )
                }
                Some(true) => {}
                None => missing.push("the function in /proc/kallsyms (unreadable)".into()),
            }
            if facts.kprobe_blacklisted == Some(true) {
                return fails(
                    FailureId::NotTraceable,
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
                            FailureId::FentryNotSupported,
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
                        FailureId::FentryBusy,
                        "CONFIG_FUNCTION_TRACER or CONFIG_DYNAMIC_FTRACE is not set".into(),
                    );
                }
                (_, Some(false)) => {
                    return fails(
                        FailureId::FentryNotSupported,
                        "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS is not set: no trampolines on kernel functions".into(),
                    );
                }
                (Some(true), Some(true)) => {}
                _ => missing.push("the ftrace options (no kernel config found)".into()),
            }
            if facts.function_in_btf == Some(false) {
                return fails(
                    FailureId::FunctionNotFound,
                    "the function is not in the kernel's BTF".into(),
                );
            }
            if facts.function_tracing_locked {
                return fails(
                    FailureId::TracingRefused,
                    "function tracing is locked: available_filter_functions answers EPERM even to root".into(),
                );
            }
            match facts.function_traceable {
                Some(false) => {
                    return fails(
                        FailureId::NotTraceable,
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
                FailureId::ContainerRestricted,
                "root here lacks CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN) in the initial namespace"
                    .into(),
            );
        }
        missing.insert(
            0,
            "whether the kernel accepts the programs (needs root: `sudo unlink-doctor`)".into(),
        );
        return Prediction::Unchecked {
            blocked_by: Some(FailureId::NotPrivileged.failure()),
            missing,
        };
    }
    if let (Some(version), Some(limit)) = (facts.kernel_version, facts.memlock_limit) {
        if version < (5, 11) && limit < MEMLOCK_NEEDED {
            return fails(
                FailureId::MemlockLimit,
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

#[cfg(test)]
mod tests {
    use super::*;
    use unlink_common::facts::fixtures::this_machine;

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

    fn failed(prediction: Prediction) -> FailureId {
        match prediction {
            Prediction::Fails { failure, .. } => failure.id,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn predictions_for_this_machine_and_stock_kernels() {
        assert_eq!(
            failed(predict(Probe::Kprobe, &this_machine())),
            FailureId::NoKprobes
        );
        assert_eq!(
            failed(predict(Probe::Fentry, &this_machine())),
            FailureId::TracingRefused
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
            FailureId::FentryNotSupported
        );
        assert_eq!(
            failed(predict(Probe::Fentry, &debian("aarch64", (6, 1)))),
            FailureId::FentryNotSupported
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
            FailureId::KernelTooOld
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
                assert_eq!(failure.id, FailureId::NotPrivileged);
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
            FailureId::ContainerRestricted
        );
        let no_btf = Facts {
            btf: false,
            ..debian("x86_64", (6, 1))
        };
        assert_eq!(failed(predict(Probe::Kprobe, &no_btf)), FailureId::NoBtf);
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
            FailureId::FunctionNotFound
        );
        assert_eq!(
            failed(predict(Probe::Fentry, &renamed)),
            FailureId::FunctionNotFound
        );
        let old_memlock = Facts {
            memlock_limit: Some(64 << 10),
            ..debian("x86_64", (5, 10))
        };
        assert_eq!(
            failed(predict(Probe::Kprobe, &old_memlock)),
            FailureId::MemlockLimit
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
}
