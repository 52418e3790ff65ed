//! /proc/PID/limits: the locked-memory limit, which kernels before 5.11 charge BPF maps to.
//!
//! Hand-written rather than procfs-core's `Limits` (0.18): that one needs all sixteen
//! limits, and a snapshot made by hand may hold only the `Max locked memory` line.

/// A soft and hard limit in bytes; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// The `Max locked memory` line of a /proc/PID/limits text.
pub fn memlock(limits: &str) -> Option<Limit> {
    let rest = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max locked memory"))?;
    let mut fields = rest.split_whitespace();
    let value = |field: Option<&str>| -> Option<Option<u64>> {
        match field? {
            "unlimited" => Some(None),
            number => number.parse().ok().map(Some),
        }
    };
    Some(Limit {
        soft: value(fields.next())?,
        hard: value(fields.next())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_memlock() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max locked memory         8388608              unlimited            bytes\n";
        assert_eq!(
            memlock(text),
            Some(Limit {
                soft: Some(8 << 20),
                hard: None
            })
        );
        assert_eq!(
            memlock("Max locked memory 65536 65536 bytes"),
            Some(Limit {
                soft: Some(65536),
                hard: Some(65536)
            })
        );
        assert_eq!(memlock("Max locked memory lots"), None);
        assert_eq!(memlock(""), None);
    }

    proptest! {
        #[test]
        fn never_panics(text in "(Max locked memory)?.{0,200}") {
            let _ = memlock(&text);
        }
    }
}
