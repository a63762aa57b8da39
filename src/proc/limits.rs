//! /proc/PID/limits: resource limits, read without prlimit so a dump needs
//! no CAP_SYS_RESOURCE.

use anyhow::{bail, Context, Result};

/// RLIM_INFINITY as stored in images.
pub const RLIM_INFINITY: u64 = u64::MAX;

/// The row names of /proc/PID/limits in RLIMIT_* order (the kernel prints
/// them in resource-number order).
pub const NAMES: [&str; 16] = [
    "Max cpu time",
    "Max file size",
    "Max data size",
    "Max stack size",
    "Max core file size",
    "Max resident set",
    "Max processes",
    "Max open files",
    "Max locked memory",
    "Max address space",
    "Max file locks",
    "Max pending signals",
    "Max msgqueue size",
    "Max nice priority",
    "Max realtime priority",
    "Max realtime timeout",
];

fn value(v: &str) -> Result<u64> {
    if v == "unlimited" {
        Ok(RLIM_INFINITY)
    } else {
        v.parse().with_context(|| format!("bad limit {v:?}"))
    }
}

/// Parse the text of /proc/PID/limits into (soft, hard) pairs in RLIMIT order.
pub fn parse(text: &str) -> Result<Vec<(u64, u64)>> {
    let mut out = Vec::with_capacity(NAMES.len());
    for name in NAMES {
        let line = text.lines().find(|l| l.starts_with(name)).with_context(|| format!("no '{name}' row"))?;
        let rest: Vec<&str> = line[name.len()..].split_whitespace().collect();
        if rest.len() < 2 {
            bail!("short '{name}' row");
        }
        out.push((value(rest[0])?, value(rest[1])?));
    }
    Ok(out)
}

/// Read /proc/PID/limits.
pub fn read(pid: i32) -> Result<Vec<(u64, u64)>> {
    parse(&super::read(pid, "limits")?).with_context(|| format!("parsing /proc/{pid}/limits"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_getrlimit() {
        let l = super::read(std::process::id() as i32).unwrap();
        assert_eq!(l.len(), 16);
        let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(l[7], (soft, hard));
        let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_STACK).unwrap();
        assert_eq!(l[3], (soft, hard));
    }
}
