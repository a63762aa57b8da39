//! membarrier00: membarrier() registrations of the process survive: every
//! private expedited registration the kernel offers (plain, SYNC_CORE,
//! RSEQ) is made, the global expedited one is left out. After:
//! MEMBARRIER_CMD_GET_REGISTRATIONS reports exactly those (where the
//! kernel has it), and each registered barrier can be issued (an
//! unregistered private expedited barrier fails with EPERM).

use zdtm::Checks;

const QUERY: i32 = 0;
const REGISTER_GLOBAL_EXPEDITED: i32 = 1 << 2;
const PRIVATE_EXPEDITED: i32 = 1 << 3;
const REGISTER_PRIVATE_EXPEDITED: i32 = 1 << 4;
const PRIVATE_EXPEDITED_SYNC_CORE: i32 = 1 << 5;
const REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: i32 = 1 << 6;
const PRIVATE_EXPEDITED_RSEQ: i32 = 1 << 7;
const REGISTER_PRIVATE_EXPEDITED_RSEQ: i32 = 1 << 8;
const GET_REGISTRATIONS: i32 = 1 << 9;

/// membarrier(cmd, 0, 0): its result, or -errno.
fn membarrier(cmd: i32) -> i64 {
    // SAFETY: plain syscall, no pointers.
    let r = unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0, 0) };
    if r < 0 { -(zdtm::last_err().raw_os_error().unwrap_or(0) as i64) } else { r }
}

fn main() {
    zdtm::test_init();
    let supported = membarrier(QUERY);
    if supported < 0 {
        zdtm::skip(&format!("membarrier() is not supported here ({supported})"));
    }
    let supported = supported as i32;
    if supported & REGISTER_PRIVATE_EXPEDITED == 0 {
        zdtm::skip("no MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED on this kernel");
    }
    // (registration, the barrier it allows)
    let pairs = [
        (REGISTER_PRIVATE_EXPEDITED, PRIVATE_EXPEDITED),
        (REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, PRIVATE_EXPEDITED_SYNC_CORE),
        (REGISTER_PRIVATE_EXPEDITED_RSEQ, PRIVATE_EXPEDITED_RSEQ),
    ];
    let mut registered = 0;
    for (reg, _) in pairs {
        if supported & reg != 0 {
            let r = membarrier(reg);
            if r != 0 {
                zdtm::fail(&format!("membarrier({reg:#x}) registering: {r}"));
            }
            registered |= reg;
        }
    }
    let has_get = supported & GET_REGISTRATIONS != 0;
    if has_get && membarrier(GET_REGISTRATIONS) != registered as i64 {
        zdtm::fail(&format!("registrations {:#x} right after registering {registered:#x}", membarrier(GET_REGISTRATIONS)));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // A registration the process did not have.
        if membarrier(REGISTER_GLOBAL_EXPEDITED) != 0 {
            zdtm::fail("sabotage: can't register MEMBARRIER_CMD_GLOBAL_EXPEDITED");
        }
    }
    let mut c = Checks::new();
    if has_get {
        c.eq("MEMBARRIER_CMD_GET_REGISTRATIONS", membarrier(GET_REGISTRATIONS), registered as i64);
    }
    for (reg, barrier) in pairs {
        if supported & reg != 0 {
            c.eq(&format!("membarrier({barrier:#x}) (registered with {reg:#x})"), membarrier(barrier), 0);
        }
    }
    c.finish()
}
