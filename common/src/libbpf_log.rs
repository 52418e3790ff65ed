//! libbpf's messages, kept: some failures are explained only there (a missing
//! BTF id, a verifier log). Shown on stderr too when asked (`-v`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use libbpf_rs::PrintLevel;

static LOG: Mutex<String> = Mutex::new(String::new());
static SHOW: AtomicBool = AtomicBool::new(false);

/// Keep libbpf's messages from now on; `show` also prints them, with debug detail.
pub fn capture(show: bool) {
    SHOW.store(show, Ordering::Relaxed);
    let level = if show {
        PrintLevel::Debug
    } else {
        PrintLevel::Info
    };
    libbpf_rs::set_print(Some((level, keep)));
}

/// What libbpf said since the capture began or was last cleared.
pub fn text() -> String {
    LOG.lock().map(|log| log.clone()).unwrap_or_default()
}

/// Forget what was kept: a new attempt begins.
pub fn clear() {
    if let Ok(mut log) = LOG.lock() {
        log.clear();
    }
}

fn keep(_level: PrintLevel, message: String) {
    if SHOW.load(Ordering::Relaxed) {
        eprint!("{message}");
    }
    if let Ok(mut log) = LOG.lock() {
        log.push_str(&message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_libbpf_says_until_cleared() {
        capture(false);
        clear();
        // An object that is not ELF: libbpf says why through the print callback.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-bpf.o");
        std::fs::write(&path, b"not an ELF file").unwrap();
        assert!(libbpf_rs::ObjectBuilder::default()
            .open_file(&path)
            .is_err());
        let said = text();
        assert!(said.contains("libbpf"), "{said:?}");
        clear();
        assert_eq!(text(), "");
    }
}
