//! Which lesson, and where in its life the kernel said no: the terms every
//! other room of the catalogue speaks in.

use std::fmt;

use serde::Serialize;

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
