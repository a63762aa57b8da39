//! /proc/PID/smaps: every VMA with its protections, offset, backing file and
//! VmFlags (which tell growsdown, shared, madvise state and more).

use anyhow::{bail, Context, Result};

/// One VMA as the kernel reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapEntry {
    pub start: u64,
    pub end: u64,
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    pub shared: bool,
    pub offset: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub inode: u64,
    /// The path or `[name]`; empty for anonymous memory.
    pub name: String,
    /// Two-letter VmFlags (`rd`, `gd`, `dd`, ...).
    pub vm_flags: Vec<String>,
}

impl MapEntry {
    pub fn has_flag(&self, f: &str) -> bool {
        self.vm_flags.iter().any(|x| x == f)
    }

    /// Backed by a file (not anonymous, not a special `[...]` area).
    pub fn is_file(&self) -> bool {
        self.inode != 0 || self.name.starts_with('/')
    }

    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

fn parse_head(line: &str) -> Result<MapEntry> {
    let mut it = line.splitn(6, ' ');
    let range = it.next().context("no range")?;
    let perms = it.next().context("no perms")?;
    let offset = it.next().context("no offset")?;
    let dev = it.next().context("no dev")?;
    let inode = it.next().context("no inode")?;
    let name = it.next().unwrap_or("").trim_start().to_string();
    let (s, e) = range.split_once('-').context("bad range")?;
    let (maj, min) = dev.split_once(':').context("bad dev")?;
    let p = perms.as_bytes();
    if p.len() != 4 {
        bail!("bad perms {perms:?}");
    }
    Ok(MapEntry {
        start: u64::from_str_radix(s, 16)?,
        end: u64::from_str_radix(e, 16)?,
        read: p[0] == b'r',
        write: p[1] == b'w',
        exec: p[2] == b'x',
        shared: p[3] == b's',
        offset: u64::from_str_radix(offset, 16)?,
        dev_major: u32::from_str_radix(maj, 16)?,
        dev_minor: u32::from_str_radix(min, 16)?,
        inode: inode.parse()?,
        name,
        vm_flags: Vec::new(),
    })
}

fn is_head(line: &str) -> bool {
    // A VMA line starts with "hex-hex "; attribute lines start with "Name:".
    line.split_once(' ').is_some_and(|(r, _)| r.contains('-') && r.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
}

/// Parse the text of /proc/PID/smaps (or maps, without VmFlags).
pub fn parse(text: &str) -> Result<Vec<MapEntry>> {
    let mut out: Vec<MapEntry> = Vec::new();
    for line in text.lines() {
        if is_head(line) {
            out.push(parse_head(line).with_context(|| format!("bad maps line {line:?}"))?);
        } else if let Some(flags) = line.strip_prefix("VmFlags:")
            && let Some(last) = out.last_mut() {
                last.vm_flags = flags.split_whitespace().map(str::to_string).collect();
            }
    }
    Ok(out)
}

/// Read /proc/PID/smaps.
pub fn read(pid: i32) -> Result<Vec<MapEntry>> {
    parse(&super::read(pid, "smaps")?).with_context(|| format!("parsing /proc/{pid}/smaps"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_self() {
        let maps = super::read(std::process::id() as i32).unwrap();
        assert!(maps.iter().any(|m| m.name == "[stack]" && m.has_flag("gd")));
        assert!(maps.iter().any(|m| m.name == "[vdso]" && m.exec));
        assert!(maps.iter().all(|m| !m.vm_flags.is_empty()));
        let t = "7f00-7f10 rw-s 00001000 fe:01 1234                       /tmp/a b (deleted)\nVmFlags: rd wr sh\n";
        let m = &super::parse(t).unwrap()[0];
        assert_eq!((m.start, m.end, m.offset, m.inode), (0x7f00, 0x7f10, 0x1000, 1234));
        assert!(m.shared && m.read && m.write && !m.exec);
        assert_eq!((m.dev_major, m.dev_minor), (0xfe, 1));
        assert_eq!(m.name, "/tmp/a b (deleted)");
    }
}
