//! Kernel configs (`CONFIG_X=y`, `# CONFIG_X is not set`), plain or gzipped,
//! and where to find one, in the order moby's check-config.sh looks.
//!
//! The running kernel's /proc/config.gz is read through procfs ([`KernelConfig::from_procfs`]).
//! Every other file, and all of a snapshot, is parsed here: procfs's reader opens only
//! /proc/config.gz or /boot/config-$(uname -r) on the running system, not files under a
//! snapshot's root with their size caps, and its gunzip has no cap on the decompressed size.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use procfs::ConfigSetting;

/// The running kernel's config, when it was built with CONFIG_IKCONFIG_PROC.
pub const PROC_CONFIG: &str = "/proc/config.gz";

/// The options set in a kernel config; an option that is absent or `is not set` is off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelConfig {
    options: BTreeMap<String, String>,
}

impl KernelConfig {
    pub fn parse(text: &str) -> KernelConfig {
        let options = text
            .lines()
            .filter_map(|line| {
                let (name, value) = line.trim().strip_prefix("CONFIG_")?.split_once('=')?;
                let valid = !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                (valid && value != "n")
                    .then(|| (name.to_string(), value.trim_matches('"').to_string()))
            })
            .collect();
        KernelConfig { options }
    }

    /// The options procfs read, spelled as [`KernelConfig::parse`] keeps them.
    pub fn from_procfs(options: HashMap<String, ConfigSetting>) -> KernelConfig {
        let options = options
            .into_iter()
            .filter_map(|(name, setting)| {
                let value = match setting {
                    ConfigSetting::Yes => "y".to_string(),
                    ConfigSetting::Module => "m".to_string(),
                    ConfigSetting::Value(value) => value.trim_matches('"').to_string(),
                };
                let name = name.strip_prefix("CONFIG_")?;
                (value != "n").then(|| (name.to_string(), value))
            })
            .collect();
        KernelConfig { options }
    }

    /// The value of `CONFIG_{name}` (`y`, `m`, a number or string), `None` when not set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.options.get(name).map(String::as_str)
    }

    /// `CONFIG_{name}` is `y` or `m`.
    pub fn enabled(&self, name: &str) -> bool {
        matches!(self.get(name), Some("y" | "m"))
    }

    pub fn is_empty(&self) -> bool {
        self.options.is_empty()
    }

    /// The architecture the config was made for (`uname -m` spelling), from its arch options.
    pub fn arch(&self) -> Option<&'static str> {
        [
            ("X86_64", "x86_64"),
            ("ARM64", "aarch64"),
            ("RISCV", "riscv64"),
            ("S390", "s390x"),
            ("PPC64", "ppc64le"),
            ("LOONGARCH", "loongarch64"),
        ]
        .into_iter()
        .find(|(option, _)| self.enabled(option))
        .map(|(_, arch)| arch)
    }
}

/// Where a kernel config may be, for kernel release `release`, most authoritative first.
pub fn candidates(release: &str) -> Vec<String> {
    let mut paths = vec![PROC_CONFIG.to_string()];
    if !release.is_empty() && !release.contains('/') {
        paths.extend([
            format!("/boot/config-{release}"),
            format!("/lib/modules/{release}/config"),
            format!("/usr/lib/modules/{release}/config"),
            format!("/usr/src/linux-{release}/.config"),
        ]);
    }
    paths.push("/usr/src/linux/.config".to_string());
    paths
}

/// Decompressed configs bigger than this are not configs (real ones are about 300 KB).
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// The text of a config file, gunzipped when it starts with the gzip magic.
pub fn decode(bytes: &[u8]) -> Result<String, String> {
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .take(MAX_CONFIG_BYTES)
            .read_to_end(&mut out)
            .map_err(|err| format!("corrupt gzip data: {err}"))?;
        out
    } else {
        bytes.to_vec()
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    if KernelConfig::parse(&text).is_empty() {
        return Err("no CONFIG_ options in it".to_string());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    const SAMPLE: &str = "#\n# Linux/x86 6.1.0 Kernel Configuration\nCONFIG_BPF=y\nCONFIG_BPF_SYSCALL=y\n\
        # CONFIG_KPROBES is not set\nCONFIG_KPROBE_EVENTS=m\nCONFIG_LOCALVERSION=\"-fc\"\nCONFIG_X86_64=y\nCONFIG_NOPE=n\n";

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn parses_set_and_unset_options() {
        let config = KernelConfig::parse(SAMPLE);
        assert!(config.enabled("BPF") && config.enabled("KPROBE_EVENTS"));
        assert!(
            !config.enabled("KPROBES") && !config.enabled("NOPE") && !config.enabled("MISSING")
        );
        assert_eq!(config.get("LOCALVERSION"), Some("-fc"));
        assert_eq!(config.arch(), Some("x86_64"));
    }

    #[test]
    fn procfs_reads_the_same_options() {
        use procfs::FromBufRead;
        let read = procfs::KernelConfig::from_buf_read(SAMPLE.as_bytes()).unwrap();
        assert_eq!(
            KernelConfig::from_procfs(read.0),
            KernelConfig::parse(SAMPLE)
        );
    }

    #[test]
    fn decodes_plain_and_gzip_and_rejects_garbage() {
        assert_eq!(decode(SAMPLE.as_bytes()).unwrap(), SAMPLE);
        assert_eq!(decode(&gzip(SAMPLE.as_bytes())).unwrap(), SAMPLE);
        let gz = gzip(SAMPLE.as_bytes());
        assert!(decode(&gz[..gz.len() / 2])
            .unwrap_err()
            .contains("corrupt gzip"));
        assert!(decode(&[0x1f, 0x8b]).is_err());
        assert!(decode(b"").is_err());
        assert!(decode(&[0xff; 1000]).is_err());
    }

    #[test]
    fn candidates_follow_the_release() {
        let paths = candidates("6.1.0-27-amd64");
        assert_eq!(paths[0], "/proc/config.gz");
        assert!(paths.contains(&"/boot/config-6.1.0-27-amd64".to_string()));
        assert!(paths.contains(&"/lib/modules/6.1.0-27-amd64/config".to_string()));
        assert!(!candidates("../../etc").iter().any(|p| p.contains("..")));
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = decode(&bytes);
            let _ = decode(&gzip(&bytes));
            let mut with_magic = vec![0x1f, 0x8b];
            with_magic.extend(&bytes);
            let _ = decode(&with_magic);
        }

        #[test]
        fn parse_never_panics_and_finds_what_was_written(text in ".{0,400}", name in "[A-Z][A-Z0-9_]{0,20}") {
            let _ = KernelConfig::parse(&text);
            let config = KernelConfig::parse(&format!("{text}\nCONFIG_{name}=y\n"));
            prop_assert!(config.enabled(&name));
        }
    }
}
