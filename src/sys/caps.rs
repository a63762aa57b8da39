//! This thread's capability sets (capget/capset, 64-bit version 3) and
//! securebits.

use super::ret::{check, check_int, Res};

const VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The calling thread's (effective, permitted, inheritable) sets.
pub fn get() -> Res<(u64, u64, u64)> {
    let mut h = Header { version: VERSION_3, pid: 0 };
    let mut d = [Data::default(); 2];
    // SAFETY: capget reads the header and writes two Data structs (version 3).
    check(unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()) })?;
    let join = |f: fn(&Data) -> u32| u64::from(f(&d[0])) | (u64::from(f(&d[1])) << 32);
    Ok((join(|x| x.effective), join(|x| x.permitted), join(|x| x.inheritable)))
}

/// Set the calling thread's (effective, permitted, inheritable) sets.
pub fn set(eff: u64, prm: u64, inh: u64) -> Res<()> {
    let h = Header { version: VERSION_3, pid: 0 };
    let d = [
        Data { effective: eff as u32, permitted: prm as u32, inheritable: inh as u32 },
        Data { effective: (eff >> 32) as u32, permitted: (prm >> 32) as u32, inheritable: (inh >> 32) as u32 },
    ];
    // SAFETY: capset reads the header and two Data structs (version 3).
    check(unsafe { libc::syscall(libc::SYS_capset, &h as *const Header, d.as_ptr()) }).map(drop)
}

/// prctl(PR_SET_SECUREBITS, bits).
pub fn set_securebits(bits: u32) -> Res<()> {
    // SAFETY: PR_SET_SECUREBITS takes an integer argument only.
    check_int(unsafe { libc::prctl(libc::PR_SET_SECUREBITS, libc::c_ulong::from(bits), 0, 0, 0) })?;
    Ok(())
}
