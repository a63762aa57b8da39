//! /proc/PID/stat: state, parentage, and the mm boundaries CRIU stores.

use anyhow::{bail, Context, Result};

/// The fields of /proc/PID/stat a dump uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    pub pid: i32,
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// The controlling terminal's device number (0: none).
    pub tty_nr: u32,
    /// The foreground process group of the controlling terminal.
    pub tpgid: i32,
    pub flags: u32,
    pub nice: i64,
    pub num_threads: i64,
    pub start_time: u64,
    pub start_code: u64,
    pub end_code: u64,
    pub start_stack: u64,
    pub exit_signal: i32,
    pub policy: u32,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
    pub exit_code: i32,
}

/// Parse the text of /proc/PID/stat.
pub fn parse(text: &str) -> Result<Stat> {
    let open = text.find('(').context("no '(' in stat")?;
    let close = text.rfind(')').context("no ')' in stat")?;
    let pid = text[..open].trim().parse().context("bad pid in stat")?;
    let comm = text[open + 1..close].to_string();
    let f: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // f[0] is field 3 (state); field N is f[N - 3].
    if f.len() < 49 {
        bail!("stat has {} fields after comm, want 49", f.len());
    }
    let n = |i: usize| -> Result<u64> { f[i - 3].parse::<u64>().with_context(|| format!("stat field {i}: {}", f[i - 3])) };
    let s = |i: usize| -> Result<i64> { f[i - 3].parse::<i64>().with_context(|| format!("stat field {i}: {}", f[i - 3])) };
    Ok(Stat {
        pid,
        comm,
        state: f[0].chars().next().unwrap_or('?'),
        ppid: s(4)? as i32,
        pgid: s(5)? as i32,
        sid: s(6)? as i32,
        tty_nr: s(7)? as u32,
        tpgid: s(8)? as i32,
        flags: n(9)? as u32,
        nice: s(19)?,
        num_threads: s(20)?,
        start_time: n(22)?,
        start_code: n(26)?,
        end_code: n(27)?,
        start_stack: n(28)?,
        exit_signal: s(38)? as i32,
        policy: n(41)? as u32,
        start_data: n(45)?,
        end_data: n(46)?,
        start_brk: n(47)?,
        arg_start: n(48)?,
        arg_end: n(49)?,
        env_start: n(50)?,
        env_end: n(51)?,
        exit_code: s(52)? as i32,
    })
}

/// Read and parse /proc/PID/stat.
pub fn read(pid: i32) -> Result<Stat> {
    parse(&super::read(pid, "stat")?).with_context(|| format!("parsing /proc/{pid}/stat"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_self_and_odd_comm() {
        let me = super::read(std::process::id() as i32).unwrap();
        assert_eq!(me.pid, std::process::id() as i32);
        assert!(me.start_code > 0 && me.end_code > me.start_code);
        let line = "42 (a) b (c) S 1 42 42 0 -1 4194304 1 0 0 0 0 0 0 0 20 0 1 0 5 1000 100 18446744073709551615 \
                    1 2 3 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 4 5 6 7 8 9 10 0";
        let s = super::parse(line).unwrap();
        assert_eq!(s.comm, "a) b (c");
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 1);
        assert_eq!((s.start_code, s.end_code, s.start_stack), (1, 2, 3));
        assert_eq!((s.start_data, s.env_end, s.exit_code), (4, 10, 0));
    }
}
