//! A thread seized inside an rseq critical section. The kernel would move
//! such a thread to the section's abort handler on its next return to user
//! space (and clear `rseq->rseq_cs`); running the parasite makes it clear
//! the pointer without moving the thread, so this is read at seize time,
//! through ptrace, before anything runs in the thread. As CRIU 4.2: an
//! abortable section moves the saved IP to `abort_ip`; a section flagged
//! RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL (with `rseq.flags`) keeps the IP and
//! the image records `rseq_cs_pointer`.

use nix::unistd::Pid;

use crate::sys::ptrace;

const NO_RESTART_ON_SIGNAL: u32 = 1 << 1;

/// struct rseq_cs, as the thread's memory holds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RseqCs {
    pub version: u32,
    pub flags: u32,
    pub start_ip: u64,
    pub post_commit_offset: u64,
    pub abort_ip: u64,
}

/// What the seize found of a thread's rseq critical section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RseqSeen {
    /// `rseq->rseq_cs` when the section's flags (with the registration's)
    /// include NO_RESTART_ON_SIGNAL: the image's `rseq_cs_pointer`.
    pub cs_pointer: Option<u64>,
    /// The thread was stopped inside such a non-abortable section.
    pub in_kept_cs: bool,
    /// The IP was inside an abortable section and moved from there.
    pub moved_from: Option<u64>,
    /// What the dump cannot carry (an rseq_cs version it does not know).
    pub problem: Option<String>,
}

/// Decide for a thread at `ip` whose `struct rseq` has `rseq_cs` (the
/// pointer) and `rseq_flags`, `cs` being what that pointer points at: the
/// new IP (if it moves) and what the dump records.
pub fn decide(ip: u64, rseq_cs: u64, rseq_flags: u32, cs: &RseqCs) -> (Option<u64>, RseqSeen) {
    let mut seen = RseqSeen::default();
    if rseq_cs == 0 || cs.start_ip == 0 {
        return (None, seen);
    }
    if cs.version != 0 {
        seen.problem = Some(format!("its rseq_cs at {rseq_cs:#x} has version {} (only 0 is known)", cs.version));
        return (None, seen);
    }
    let flags = cs.flags | rseq_flags;
    let inside = ip >= cs.start_ip && ip < cs.start_ip.wrapping_add(cs.post_commit_offset);
    if flags & NO_RESTART_ON_SIGNAL != 0 {
        seen.cs_pointer = Some(rseq_cs);
        seen.in_kept_cs = inside;
        return (None, seen);
    }
    if inside {
        seen.moved_from = Some(ip);
        return (Some(cs.abort_ip), seen);
    }
    (None, seen)
}

/// Read the rseq state of ptrace-stopped `pid` at `ip` (None when it has
/// no rseq registration or the kernel cannot tell).
pub fn inspect(pid: Pid, ip: u64) -> Result<(Option<u64>, RseqSeen), nix::errno::Errno> {
    let Ok((_, conf)) = crate::sys::ptrace::get_rseq_conf(pid) else {
        return Ok((None, RseqSeen::default()));
    };
    if conf.rseq_abi_pointer == 0 {
        return Ok((None, RseqSeen::default()));
    }
    // struct rseq: cpu_id_start, cpu_id (u32 each), rseq_cs (u64), flags (u32).
    let base = conf.rseq_abi_pointer;
    let rseq_cs = ptrace::peek(pid, base + 8)?;
    if rseq_cs == 0 {
        return Ok((None, RseqSeen::default()));
    }
    let rseq_flags = ptrace::peek(pid, base + 16)? as u32;
    let w0 = ptrace::peek(pid, rseq_cs)?;
    let cs = RseqCs {
        version: w0 as u32,
        flags: (w0 >> 32) as u32,
        start_ip: ptrace::peek(pid, rseq_cs + 8)?,
        post_commit_offset: ptrace::peek(pid, rseq_cs + 16)?,
        abort_ip: ptrace::peek(pid, rseq_cs + 24)?,
    };
    Ok(decide(ip, rseq_cs, rseq_flags, &cs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cs(flags: u32) -> RseqCs {
        RseqCs { version: 0, flags, start_ip: 0x1000, post_commit_offset: 0x20, abort_ip: 0x2000 }
    }

    #[test]
    fn inside_an_abortable_section_moves_to_abort_ip() {
        for ip in [0x1000, 0x1010, 0x101f] {
            let (ip2, seen) = decide(ip, 0x7000, 0, &cs(0));
            assert_eq!(ip2, Some(0x2000), "ip {ip:#x}");
            assert_eq!(seen.moved_from, Some(ip));
            assert_eq!(seen.cs_pointer, None);
        }
    }

    #[test]
    fn outside_the_section_nothing_moves() {
        for ip in [0xfff, 0x1020, 0x2000] {
            assert_eq!(decide(ip, 0x7000, 0, &cs(0)), (None, RseqSeen::default()), "ip {ip:#x}");
        }
        // No section armed.
        assert_eq!(decide(0x1010, 0, 0, &cs(0)), (None, RseqSeen::default()));
    }

    #[test]
    fn no_restart_on_signal_keeps_ip_and_records_the_pointer() {
        let (ip2, seen) = decide(0x1010, 0x7000, 0, &cs(NO_RESTART_ON_SIGNAL | 1 | 4));
        assert_eq!(ip2, None);
        assert_eq!(seen.cs_pointer, Some(0x7000));
        assert!(seen.in_kept_cs);
        // The registration's flags count too; outside the section.
        let (ip2, seen) = decide(0x3000, 0x7000, NO_RESTART_ON_SIGNAL, &cs(0));
        assert_eq!(ip2, None);
        assert_eq!(seen.cs_pointer, Some(0x7000));
        assert!(!seen.in_kept_cs);
    }

    #[test]
    fn unknown_version_is_a_problem() {
        let mut c = cs(0);
        c.version = 1;
        let (ip2, seen) = decide(0x1010, 0x7000, 0, &c);
        assert_eq!(ip2, None);
        assert!(seen.problem.unwrap().contains("version 1"));
    }
}
