//! perf_event00 (crfail): a perf_event fd (a software task-clock counter on
//! ourselves) is a file CRIU refuses to dump. The dump must fail cleanly
//! and leave us running, untouched: the counter still counts after.

use zdtm::Checks;

/// struct perf_event_attr, PERF_ATTR_SIZE_VER0 (64 bytes).
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_TASK_CLOCK: u64 = 1;
const EXCLUDE_KERNEL: u64 = 1 << 5;
const EXCLUDE_HV: u64 = 1 << 6;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

fn count(fd: libc::c_int) -> Option<u64> {
    let mut v = 0u64;
    // SAFETY: reading 8 bytes into v.
    let n = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
    (n == 8).then_some(v)
}

fn burn() -> u64 {
    let mut x = 1u64;
    for i in 0..3_000_000u64 {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    x
}

fn main() {
    zdtm::test_init();
    let attr = PerfEventAttr {
        type_: PERF_TYPE_SOFTWARE,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: PERF_COUNT_SW_TASK_CLOCK,
        flags: EXCLUDE_KERNEL | EXCLUDE_HV,
        ..Default::default()
    };
    // SAFETY: a valid attr; counts this task on any CPU.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr,
            0,
            -1,
            -1,
            PERF_FLAG_FD_CLOEXEC,
        )
    } as libc::c_int;
    if fd < 0 {
        zdtm::skip(&format!("perf_event_open: {}", zdtm::last_err()));
    }
    burn();
    let Some(c0) = count(fd) else {
        zdtm::fail("can't read the counter")
    };
    if c0 == 0 {
        zdtm::fail("the counter does not count");
    }
    let link0 = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        let null = std::ffi::CString::new("/dev/null").unwrap();
        // SAFETY: replace the counter fd with /dev/null.
        unsafe { libc::dup2(libc::open(null.as_ptr(), libc::O_RDONLY), fd) };
    }
    let mut c = Checks::new();
    c.eq(
        "fd link",
        std::fs::read_link(format!("/proc/self/fd/{fd}")).ok(),
        link0,
    );
    let c1 = count(fd);
    c.check(c1.is_some_and(|v| v >= c0), || {
        format!("counter went from {c0} to {c1:?}")
    });
    burn();
    let c2 = count(fd);
    c.check(c2.is_some_and(|v| Some(v) > c1), || {
        format!("counter stopped: {c1:?} then {c2:?}")
    });
    c.finish()
}
