//! The BTF section: the kernel's BTF, and the unlink function's prototype in it.

use unlink_common::failures::{Facts, Probe};
use unlink_common::target::UNLINK_FUNCTIONS;

use crate::btf;
use crate::check_ids::{CheckId, SectionId};
use crate::parse::kallsyms::{self, base_name};
use crate::report::{Item, Section, Status};
use crate::sysroot::{SystemRoot, BTF_PATH};

/// The BTF section; also picks the function when `--function` was not given.
pub fn section(
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
    let btf = match btf {
        Ok(btf) => {
            items.push(Item::new(CheckId::BtfVmlinux, Status::Ok, "present"));
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
                Item::new(CheckId::BtfVmlinux, Status::Fail, value)
                    .failure("no-btf", Probe::Fentry),
            );
            let function = requested_or_kallsyms(requested, kallsyms);
            return (Section::new(SectionId::Btf, items), function);
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
                CheckId::BtfFunction,
                Status::Ok,
                function.prototype.clone(),
            ));
            items.push(match &function.mismatch {
                None => Item::new(CheckId::BtfPrototype, Status::Ok, "(int dfd, struct filename *name)"),
                Some(why) => Item::new(CheckId::BtfPrototype, Status::Warn, why.clone())
                    .advice("the programs may read wrong arguments: report it with `unlink-doctor --report`"),
            });
            Some(function.name)
        }
        Err(why) => {
            items.push(
                Item::new(CheckId::BtfFunction, Status::Fail, why)
                    .failure("function-not-found", Probe::Fentry),
            );
            requested_or_kallsyms(requested, kallsyms)
        }
    };
    (Section::new(SectionId::Btf, items), function)
}

/// Without BTF to find it in: `--function`, or the first unlink function kallsyms has.
fn requested_or_kallsyms(requested: Option<&str>, kallsyms: Option<&str>) -> Option<String> {
    requested.map(str::to_string).or_else(|| {
        UNLINK_FUNCTIONS
            .iter()
            .find_map(|name| kallsyms::lookup(kallsyms?, name))
            .map(|symbol| base_name(&symbol).to_string())
    })
}
