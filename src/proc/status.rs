//! /proc/PID/status: credentials, capabilities, signal masks, seccomp,
//! namespace pids, umask.

use anyhow::{Context, Result};

/// The fields of /proc/PID/status a dump uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// real, effective, saved, fs
    pub uids: [u32; 4],
    pub gids: [u32; 4],
    pub groups: Vec<u32>,
    pub cap_inh: u64,
    pub cap_prm: u64,
    pub cap_eff: u64,
    pub cap_bnd: u64,
    pub cap_amb: u64,
    pub sig_blk: u64,
    /// Thread-private pending signals.
    pub sig_pnd: u64,
    /// Process-shared pending signals.
    pub shd_pnd: u64,
    pub no_new_privs: bool,
    pub seccomp: u32,
    pub seccomp_filters: u32,
    pub tracer_pid: i32,
    pub ppid: i32,
    /// NSpid: pid in each pid namespace, outermost first.
    pub ns_pid: Vec<i32>,
    pub umask: Option<u32>,
    pub state: char,
}

fn hex(v: &str) -> Result<u64> {
    u64::from_str_radix(v.trim(), 16).with_context(|| format!("bad hex {v:?}"))
}

fn ids(v: &str) -> Result<[u32; 4]> {
    let mut out = [0u32; 4];
    for (i, w) in v.split_whitespace().take(4).enumerate() {
        out[i] = w.parse().with_context(|| format!("bad id {w:?}"))?;
    }
    Ok(out)
}

/// Parse the text of /proc/PID/status.
pub fn parse(text: &str) -> Result<Status> {
    let mut s = Status::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else { continue };
        let v = v.trim();
        match k {
            "State" => s.state = v.chars().next().unwrap_or('?'),
            "Uid" => s.uids = ids(v)?,
            "Gid" => s.gids = ids(v)?,
            "Groups" => s.groups = v.split_whitespace().filter_map(|g| g.parse().ok()).collect(),
            "CapInh" => s.cap_inh = hex(v)?,
            "CapPrm" => s.cap_prm = hex(v)?,
            "CapEff" => s.cap_eff = hex(v)?,
            "CapBnd" => s.cap_bnd = hex(v)?,
            "CapAmb" => s.cap_amb = hex(v)?,
            "SigBlk" => s.sig_blk = hex(v)?,
            "SigPnd" => s.sig_pnd = hex(v)?,
            "ShdPnd" => s.shd_pnd = hex(v)?,
            "NoNewPrivs" => s.no_new_privs = v == "1",
            "Seccomp" => s.seccomp = v.parse().unwrap_or(0),
            "Seccomp_filters" => s.seccomp_filters = v.parse().unwrap_or(0),
            "TracerPid" => s.tracer_pid = v.parse().unwrap_or(0),
            "PPid" => s.ppid = v.parse().unwrap_or(0),
            "NSpid" => s.ns_pid = v.split_whitespace().filter_map(|p| p.parse().ok()).collect(),
            "Umask" => s.umask = u32::from_str_radix(v, 8).ok(),
            _ => {}
        }
    }
    Ok(s)
}

/// Read and parse /proc/PID/status.
pub fn read(pid: i32) -> Result<Status> {
    parse(&super::read(pid, "status")?).with_context(|| format!("parsing /proc/{pid}/status"))
}

/// Read /proc/PID/task/TID/status.
pub fn read_thread(pid: i32, tid: i32) -> Result<Status> {
    parse(&super::read(pid, &format!("task/{tid}/status"))?).with_context(|| format!("parsing status of thread {tid}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_self() {
        let s = super::read(std::process::id() as i32).unwrap();
        assert_eq!(s.uids[0], nix::unistd::getuid().as_raw());
        assert_eq!(s.ns_pid.last().copied(), Some(std::process::id() as i32));
        assert!(s.umask.is_some());
        let t = super::parse("Uid:\t1\t2\t3\t4\nSigBlk:\t0000000000010000\nUmask:\t0022\nNSpid:\t10\t1\n").unwrap();
        assert_eq!(t.uids, [1, 2, 3, 4]);
        assert_eq!(t.sig_blk, 1 << 16);
        assert_eq!(t.umask, Some(0o22));
        assert_eq!(t.ns_pid, [10, 1]);
    }
}
