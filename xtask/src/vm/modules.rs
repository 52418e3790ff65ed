//! Kernel modules the guest loads before the command: arm64's stdout and
//! stderr are virtio consoles, which Debian's arm64 5.10 and 6.1 build as
//! modules. They are copied from the kernel package when it is cached.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The modules that arm64's stdout and stderr (virtio consoles on PCI, see
/// vm::qemu) need on kernels that do not build them in, copied with their
/// dependencies from the kernel package into `dir/modules/` as
/// `NN-name.ko`, numbered in load order (dependencies first). The package has
/// no modules.dep (depmod writes it at install), so each module's own
/// `depends=` tells what it needs.
pub fn keep_console_modules(
    unpacked: &Path,
    release: &str,
    config: &Path,
    dir: &Path,
) -> Result<()> {
    let config = fs::read_to_string(config)?;
    let wanted: Vec<&str> = [
        ("VIRTIO_CONSOLE", "virtio_console"),
        ("VIRTIO_PCI", "virtio_pci"),
    ]
    .into_iter()
    .filter(|(option, _)| config.lines().any(|l| l == format!("CONFIG_{option}=m")))
    .map(|(_, module)| module)
    .collect();
    let target = dir.join("modules");
    if target.exists() {
        fs::remove_dir_all(&target)?;
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let tree = ["lib/modules", "usr/lib/modules"]
        .map(|base| unpacked.join(base).join(release).join("kernel"))
        .into_iter()
        .find(|tree| tree.is_dir())
        .with_context(|| format!("no modules for {release} in the kernel package"))?;
    let mut files = BTreeMap::new();
    index_modules(&tree, &mut files)?;
    let order = load_order(&wanted, |name| {
        let path = files
            .get(name)
            .with_context(|| format!("{name}.ko is not in the kernel package"))?;
        let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok((
            path.clone(),
            module_depends(&data)
                .with_context(|| format!("{}: no .modinfo section", path.display()))?,
        ))
    })?;
    fs::create_dir_all(&target)?;
    for (i, path) in order.iter().enumerate() {
        let name = path.file_name().context("a module without a name")?;
        fs::copy(
            path,
            target.join(format!("{i:02}-{}", name.to_string_lossy())),
        )
        .with_context(|| format!("copying {}", path.display()))?;
    }
    Ok(())
}

/// Module name (with `_`, as `depends=` writes it) to its .ko file under `dir`.
fn index_modules(dir: &Path, files: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            index_modules(&path, files)?;
        } else if let Some(stem) = path.to_str().and_then(|p| p.strip_suffix(".ko")) {
            let name = Path::new(stem).file_name().unwrap_or_default();
            files.insert(name.to_string_lossy().replace('-', "_"), path);
        }
    }
    Ok(())
}

/// A module's file and the names of the modules it needs.
type ModuleLookup<'a> = dyn FnMut(&str) -> Result<(PathBuf, Vec<String>)> + 'a;

/// The files to load for `names`, each after the modules it needs and once.
fn load_order(
    names: &[&str],
    mut lookup: impl FnMut(&str) -> Result<(PathBuf, Vec<String>)>,
) -> Result<Vec<PathBuf>> {
    fn visit(
        name: &str,
        lookup: &mut ModuleLookup,
        order: &mut Vec<PathBuf>,
        depth: usize,
    ) -> Result<()> {
        if depth > 16 {
            bail!("module dependencies deeper than 16 at {name}: a cycle?");
        }
        let (path, needs) = lookup(name)?;
        for need in &needs {
            visit(need, lookup, order, depth + 1)?;
        }
        if !order.contains(&path) {
            order.push(path);
        }
        Ok(())
    }
    let mut order = Vec::new();
    for name in names {
        visit(name, &mut lookup, &mut order, 0)?;
    }
    Ok(order)
}

/// The `depends=` list in an ELF64 module's `.modinfo` section.
fn module_depends(module: &[u8]) -> Option<Vec<String>> {
    let u16_at =
        |at: usize| Some(u16::from_le_bytes(module.get(at..at + 2)?.try_into().ok()?) as usize);
    let u64_at =
        |at: usize| Some(u64::from_le_bytes(module.get(at..at + 8)?.try_into().ok()?) as usize);
    if module.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28)?, u16_at(0x3a)?, u16_at(0x3c)?, u16_at(0x3e)?);
    let section = |i: usize| -> Option<(usize, &[u8])> {
        let header = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let name = u32::from_le_bytes(module.get(header..header + 4)?.try_into().ok()?) as usize;
        let (offset, size) = (u64_at(header + 0x18)?, u64_at(header + 0x20)?);
        Some((name, module.get(offset..offset.checked_add(size)?)?))
    };
    let names = section(shstrndx)?.1;
    let modinfo = (0..shnum).find_map(|i| {
        let (name, data) = section(i)?;
        (names.get(name..)?.split(|&b| b == 0).next()? == b".modinfo").then_some(data)
    })?;
    let depends = modinfo
        .split(|&b| b == 0)
        .find_map(|field| field.strip_prefix(b"depends="))?;
    Some(
        String::from_utf8_lossy(depends)
            .split(',')
            .filter(|d| !d.is_empty())
            .map(|d| d.replace('-', "_"))
            .collect(),
    )
}

/// `dir/modules/*.ko`, in name (load) order.
pub fn modules_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut modules: Vec<PathBuf> = match fs::read_dir(dir.join("modules")) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?,
        Err(_) => return Ok(Vec::new()),
    };
    modules.retain(|p| p.extension().is_some_and(|e| e == "ko"));
    modules.sort();
    Ok(modules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_load_after_what_they_need() {
        let needs = |name: &str| -> Result<(PathBuf, Vec<String>)> {
            let deps: &[&str] = match name {
                "virtio_console" => &["virtio_ring", "virtio"],
                "virtio_pci" => &["virtio_pci_modern_dev", "virtio_ring", "virtio"],
                "virtio_ring" => &["virtio"],
                "virtio" | "virtio_pci_modern_dev" => &[],
                _ => bail!("{name}.ko is not in the kernel package"),
            };
            Ok((
                PathBuf::from(format!("{name}.ko")),
                deps.iter().map(|d| d.to_string()).collect(),
            ))
        };
        let order = load_order(&["virtio_console", "virtio_pci"], needs).unwrap();
        let order: Vec<&str> = order.iter().filter_map(|p| p.to_str()).collect();
        assert_eq!(
            order,
            [
                "virtio.ko",
                "virtio_ring.ko",
                "virtio_console.ko",
                "virtio_pci_modern_dev.ko",
                "virtio_pci.ko"
            ]
        );
        assert!(load_order(&["9p"], needs).is_err());
        let cycle = |_: &str| Ok((PathBuf::from("a.ko"), vec!["a".to_string()]));
        assert!(load_order(&["a"], cycle).is_err());
    }
}
