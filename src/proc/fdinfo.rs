//! /proc/PID/fdinfo/FD: position, flags, mount id and the per-type lines
//! (eventfd count, epoll targets, ...), kept as key/value pairs.

use anyhow::{Context, Result};

/// Parsed fdinfo.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FdInfo {
    pub pos: u64,
    /// Open flags (octal in the file).
    pub flags: u32,
    pub mnt_id: i32,
    pub ino: u64,
    /// Every other line, in order.
    pub extra: Vec<(String, String)>,
}

impl FdInfo {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.extra.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Parse the text of an fdinfo file.
pub fn parse(text: &str) -> Result<FdInfo> {
    let mut f = FdInfo::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else { continue };
        let v = v.trim();
        match k {
            "pos" => f.pos = v.parse().context("bad pos")?,
            "flags" => f.flags = u32::from_str_radix(v, 8).context("bad flags")?,
            "mnt_id" => f.mnt_id = v.parse().context("bad mnt_id")?,
            "ino" => f.ino = v.parse().context("bad ino")?,
            _ => f.extra.push((k.to_string(), v.to_string())),
        }
    }
    Ok(f)
}

/// Read /proc/PID/fdinfo/FD.
pub fn read(pid: i32, fd: i32) -> Result<FdInfo> {
    parse(&super::read(pid, &format!("fdinfo/{fd}"))?).with_context(|| format!("parsing fdinfo of fd {fd} of {pid}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses() {
        let f = super::parse("pos:\t12\nflags:\t02100002\nmnt_id:\t24\nino:\t3\neventfd-count:\t5\n").unwrap();
        assert_eq!(f.pos, 12);
        assert_eq!(f.flags, 0o2100002);
        assert_eq!(f.get("eventfd-count"), Some("5"));
    }
}
