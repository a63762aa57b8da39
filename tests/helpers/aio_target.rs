//! Target program for tests/aio.rs (compiled by the test with rustc; not a
//! cargo target). `aio_target DIR`: an AIO context with three reads of its
//! own executable submitted (data 1, 2, 3; the first reaped) and a poll
//! (IOCB_CMD_POLL, data 9) on the read end of an empty pipe in flight;
//! writes `DIR/ready` ("CTX WFD": the context and the pipe's write end),
//! waits for `DIR/go`, then reaps the ring's events (three, or what came
//! within 2 s) and writes them to `DIR/events`, one "DATA RES" line each, and exits.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

unsafe extern "C" {
    fn syscall(n: i64, ...) -> i64;
    fn pipe(fds: *mut i32) -> i32;
}

const SYS_IO_SETUP: i64 = 206;
const SYS_IO_GETEVENTS: i64 = 208;
const SYS_IO_SUBMIT: i64 = 209;
const IOCB_CMD_PREAD: u16 = 0;
const IOCB_CMD_POLL: u16 = 5;
const POLLIN: u64 = 1;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Iocb {
    data: u64,
    key: u32,
    rw_flags: u32,
    opcode: u16,
    reqprio: i16,
    fildes: u32,
    buf: u64,
    nbytes: u64,
    offset: i64,
    reserved2: u64,
    flags: u32,
    resfd: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct IoEvent {
    data: u64,
    obj: u64,
    res: i64,
    res2: i64,
}

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

fn getevents(ctx: u64, min: i64, max: i64, ev: &mut [IoEvent; 8], ts: Option<&Timespec>) -> i64 {
    let t = ts.map_or(std::ptr::null(), |t| t as *const Timespec);
    // SAFETY: room for 8 events (max is at most 8); a valid timeout or none.
    unsafe { syscall(SYS_IO_GETEVENTS, ctx, min, max.min(8), ev.as_mut_ptr(), t) }
}

fn main() {
    let dir = std::env::args().nth(1).expect("a directory");
    let dir = Path::new(&dir);
    let exe = std::fs::File::open("/proc/self/exe").expect("open our executable");
    let mut p = [0i32; 2];
    // SAFETY: pipe into a local pair.
    assert_eq!(unsafe { pipe(p.as_mut_ptr()) }, 0, "pipe");
    let mut ctx: u64 = 0;
    // SAFETY: io_setup writes the context into our u64.
    assert_eq!(unsafe { syscall(SYS_IO_SETUP, 16i64, &mut ctx as *mut u64) }, 0, "io_setup");
    let mut bufs = [[0u8; 8]; 3];
    let mut cbs: Vec<Iocb> = bufs
        .iter_mut()
        .enumerate()
        .map(|(i, b)| Iocb { data: i as u64 + 1, opcode: IOCB_CMD_PREAD, fildes: exe.as_raw_fd() as u32, buf: b.as_mut_ptr() as u64, nbytes: 8, ..Default::default() })
        .collect();
    cbs.push(Iocb { data: 9, opcode: IOCB_CMD_POLL, fildes: p[0] as u32, buf: POLLIN, ..Default::default() });
    let mut ptrs: Vec<*mut Iocb> = cbs.iter_mut().map(|c| c as *mut Iocb).collect();
    // SAFETY: four valid iocbs that live until the end.
    assert_eq!(unsafe { syscall(SYS_IO_SUBMIT, ctx, 4i64, ptrs.as_mut_ptr()) }, 4, "io_submit");
    let mut ev = [IoEvent::default(); 8];
    assert_eq!(getevents(ctx, 1, 1, &mut ev, None), 1, "reaping the first read");
    assert_eq!(ev[0].data, 1);
    std::fs::write(dir.join("ready.tmp"), format!("{ctx} {}", p[1])).unwrap();
    std::fs::rename(dir.join("ready.tmp"), dir.join("ready")).unwrap();
    while !dir.join("go").exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Three expected (a poll completed just before may still be on its way).
    let n = getevents(ctx, 3, 8, &mut ev, Some(&Timespec { sec: 2, nsec: 0 }));
    let lines: String = ev.iter().take(n.max(0) as usize).map(|e| format!("{} {}\n", e.data, e.res)).collect();
    std::fs::write(dir.join("events.tmp"), lines).unwrap();
    std::fs::rename(dir.join("events.tmp"), dir.join("events")).unwrap();
}
