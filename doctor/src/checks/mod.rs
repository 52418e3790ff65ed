//! The read-only checks: each section is a function of the files under the
//! system root, and each fills in the [`Facts`] the verdicts are computed from.
//! One module per section of the report; the live section is in verdict.rs.

mod btf;
mod config;
mod kernel;
mod privileges;
mod system;
mod tracing;

use unlink_common::failures::Facts;

use crate::report::Section;
use crate::sysroot::SystemRoot;

/// Everything the read-only checks found.
pub struct Survey {
    pub sections: Vec<Section>,
    pub facts: Facts,
    /// The function the lessons would attach to here (`--function`, BTF, or kallsyms).
    pub function: Option<String>,
}

/// Run every read-only check on `root`; `function` is `--function NAME`.
pub fn survey(root: &SystemRoot, function: Option<&str>) -> Survey {
    let mut facts = Facts::default();
    let release = root.read_line("/proc/sys/kernel/osrelease");
    let search = config::find(root, release.as_deref().unwrap_or(""));
    let uname = system::uname(root, release.clone(), search.found.as_ref().map(|(_, c)| c));

    let system = system::section(root, &uname);
    let kernel = kernel::section(&uname, &mut facts);
    let mut config_section = config::section(&search, uname.machine.as_deref(), &mut facts);
    let status_text = root.read_text("/proc/self/status").unwrap_or_default();
    let privileges = privileges::section(root, &status_text, &mut facts);
    let kallsyms = root
        .read("/proc/kallsyms")
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let (btf_section, function) =
        btf::section(root, function, kallsyms.as_deref().ok(), &mut facts);
    let tracing = tracing::section(root, function.as_deref(), &kallsyms, &mut facts);
    if let Some((path, _)) = &search.found {
        config::overrule_stale(&mut config_section, path, &mut facts);
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
