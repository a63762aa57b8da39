//! Credentials (`CredsEntry`, per thread) both ways: the dump reads them
//! from /proc/PID/task/TID/status with the securebits the thread told
//! ([`dump`]); the restore compares them with criu's own ([`current`],
//! [`differ`]: the restorer changes only what differs) and gives the
//! restorer capability sets as words ([`caps`]).

use crate::images::pb::CredsEntry;
use crate::proc::status::Status;

fn cap_words(v: u64) -> Vec<u32> {
    vec![(v & 0xffff_ffff) as u32, (v >> 32) as u32]
}

/// Credentials as CRIU stores them (capabilities as two u32 words).
pub fn dump(st: &Status, secbits: u32) -> CredsEntry {
    CredsEntry {
        uid: st.uids[0],
        euid: st.uids[1],
        suid: st.uids[2],
        fsuid: st.uids[3],
        gid: st.gids[0],
        egid: st.gids[1],
        sgid: st.gids[2],
        fsgid: st.gids[3],
        cap_inh: cap_words(st.cap_inh),
        cap_prm: cap_words(st.cap_prm),
        cap_eff: cap_words(st.cap_eff),
        cap_bnd: cap_words(st.cap_bnd),
        secbits,
        groups: st.groups.clone(),
        lsm_profile: None,
        lsm_sockcreate: None,
        apparmor_data: None,
        no_new_privs: st.no_new_privs.then_some(1),
        cap_amb: cap_words(st.cap_amb),
    }
}

/// A capability set from its image form ([low 32 bits, high 32 bits]).
pub fn caps(v: &[u32]) -> u64 {
    v.iter().take(2).enumerate().fold(0, |acc, (i, w)| acc | (u64::from(*w) << (32 * i)))
}

/// The current process's credentials, as the image would record them.
pub fn current() -> Option<CredsEntry> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
    let ids = |name: &str| -> Option<Vec<u32>> { field(name)?.split_whitespace().map(|x| x.parse().ok()).collect() };
    let cap = |name: &str| -> Option<Vec<u32>> {
        let v = u64::from_str_radix(field(name)?, 16).ok()?;
        Some(vec![v as u32, (v >> 32) as u32])
    };
    let (u, g) = (ids("Uid:")?, ids("Gid:")?);
    Some(CredsEntry {
        uid: *u.first()?,
        euid: *u.get(1)?,
        suid: *u.get(2)?,
        fsuid: *u.get(3)?,
        gid: *g.first()?,
        egid: *g.get(1)?,
        sgid: *g.get(2)?,
        fsgid: *g.get(3)?,
        cap_inh: cap("CapInh:")?,
        cap_prm: cap("CapPrm:")?,
        cap_eff: cap("CapEff:")?,
        cap_bnd: cap("CapBnd:")?,
        cap_amb: cap("CapAmb:")?,
        secbits: crate::sys::restorer::securebits().ok()?,
        groups: ids("Groups:")?,
        no_new_privs: Some(field("NoNewPrivs:")?.parse().ok()?),
        ..Default::default()
    })
}

/// Whether `c` differs from what we run with (else the restorer skips it).
pub fn differ(c: &CredsEntry, cur: Option<&CredsEntry>) -> bool {
    let Some(k) = cur else { return true };
    let mut groups = c.groups.clone();
    let mut kg = k.groups.clone();
    groups.sort_unstable();
    kg.sort_unstable();
    (c.uid, c.euid, c.suid, c.fsuid, c.gid, c.egid, c.sgid, c.fsgid) != (k.uid, k.euid, k.suid, k.fsuid, k.gid, k.egid, k.sgid, k.fsgid)
        || [&c.cap_inh, &c.cap_prm, &c.cap_eff, &c.cap_bnd, &c.cap_amb].map(|v| caps(v))
            != [&k.cap_inh, &k.cap_prm, &k.cap_eff, &k.cap_bnd, &k.cap_amb].map(|v| caps(v))
        || c.secbits != k.secbits
        || groups != kg
        || c.no_new_privs.unwrap_or(0) != 0 && k.no_new_privs.unwrap_or(0) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creds_round_trip() {
        let st = Status {
            uids: [1, 2, 3, 4],
            gids: [5, 6, 7, 8],
            cap_inh: 0x1,
            cap_prm: 0x1ff_feff_ffff,
            cap_eff: 0x20,
            cap_bnd: 0x1ff_ffff_ffff,
            cap_amb: 0,
            groups: vec![10, 11],
            no_new_privs: true,
            ..Default::default()
        };
        let c = dump(&st, 0x2f);
        assert_eq!((c.uid, c.euid, c.suid, c.fsuid, c.gid, c.egid, c.sgid, c.fsgid), (1, 2, 3, 4, 5, 6, 7, 8));
        assert_eq!([&c.cap_inh, &c.cap_prm, &c.cap_eff, &c.cap_bnd, &c.cap_amb].map(|v| caps(v)), [st.cap_inh, st.cap_prm, st.cap_eff, st.cap_bnd, st.cap_amb]);
        assert_eq!((c.secbits, c.groups.as_slice(), c.no_new_privs), (0x2f, &[10, 11][..], Some(1)));
        assert!(!differ(&c, Some(&c)));
        assert!(differ(&CredsEntry { fsgid: 9, ..c.clone() }, Some(&c)));
    }

    #[test]
    fn caps_join_words() {
        assert_eq!(caps(&[0xfeff_ffff, 0x1ff]), 0x1ff_feff_ffff);
        assert_eq!(caps(&[]), 0);
    }

    #[test]
    fn our_creds_do_not_differ_from_themselves() {
        let cur = current().expect("read our creds");
        assert!(!differ(&cur, Some(&cur)));
        let other = CredsEntry { uid: cur.uid + 1, ..cur.clone() };
        assert!(differ(&other, Some(&cur)));
    }
}
