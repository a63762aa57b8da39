//! Seccomp filters for the seccomp_filter* tests: a filter that makes given
//! syscalls fail with given errnos (and allows the rest), installed on the
//! calling thread (or with TSYNC on every thread), and what a thread sees:
//! the errno a filtered syscall gets, its /proc status fields.

/// Syscalls the tests filter: nothing in the test library or Rust's
/// runtime makes them.
pub const SYSINFO: i64 = libc::SYS_sysinfo;
pub const TIMES: i64 = libc::SYS_times;
pub const GETRUSAGE: i64 = libc::SYS_getrusage;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_SET_MODE_FILTER: libc::c_long = 1;
pub const SECCOMP_FILTER_FLAG_TSYNC: libc::c_long = 1;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// A filter: each (syscall, errno) of `deny` fails with that errno,
/// everything else is allowed (another architecture's calls kill).
pub fn program(deny: &[(i64, i32)]) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let mut p = vec![
        insn(LD_W_ABS, 0, 0, 4),
        insn(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        insn(RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        insn(LD_W_ABS, 0, 0, 0),
    ];
    for &(nr, errno) in deny {
        p.push(insn(JEQ_K, 0, 1, nr as u32));
        p.push(insn(RET_K, 0, 0, SECCOMP_RET_ERRNO | errno as u32));
    }
    p.push(insn(RET_K, 0, 0, SECCOMP_RET_ALLOW));
    p
}

/// PR_SET_NO_NEW_PRIVS (what an unprivileged task needs to filter itself).
pub fn no_new_privs() {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        crate::fail(&format!("PR_SET_NO_NEW_PRIVS: {}", crate::last_err()));
    }
}

/// Install `deny`'s filter with `flags` (SECCOMP_FILTER_FLAG_TSYNC: on
/// every thread of the process).
pub fn install(deny: &[(i64, i32)], flags: libc::c_long) {
    let p = program(deny);
    let prog = libc::sock_fprog { len: p.len() as u16, filter: p.as_ptr() as *mut libc::sock_filter };
    // SAFETY: `prog` points at `p`, alive for the call.
    let r = unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog as *const libc::sock_fprog) };
    if r != 0 {
        crate::fail(&format!("seccomp(SECCOMP_SET_MODE_FILTER, {flags}): {r} {}", crate::last_err()));
    }
}

/// The errno syscall `nr` fails with in the calling thread (0: it worked).
pub fn errno_of(nr: i64) -> i32 {
    let mut buf = [0u8; 512];
    // SAFETY: sysinfo, times and getrusage (RUSAGE_SELF = 0) write at most
    // a few hundred bytes into `buf`.
    let r = unsafe {
        match nr {
            SYSINFO => libc::syscall(nr, buf.as_mut_ptr()),
            TIMES => libc::syscall(nr, buf.as_mut_ptr()),
            _ => libc::syscall(nr, 0, buf.as_mut_ptr()),
        }
    };
    if r == -1 { crate::last_err().raw_os_error().unwrap_or(-1) } else { 0 }
}

/// Field `name` (e.g. "Seccomp_filters") of /proc/self/task/TID/status.
pub fn status_field(tid: i32, name: &str) -> String {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')).map(|v| v.trim().to_string())))
        .unwrap_or_else(|| "?".into())
}

/// The calling thread's id.
pub fn gettid() -> i32 {
    // SAFETY: gettid takes no arguments.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}
