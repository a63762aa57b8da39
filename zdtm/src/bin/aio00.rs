//! aio00: an AIO context (io_setup) and its ring mapped in our memory, no
//! request in flight. We refuse to dump the ring (CRIU 4.2 carries it): the
//! dump must name it and leave us running. After, the context still works:
//! its ring is at the context's address (magic 0xa10a10a1) and a read
//! submitted through it completes with the file's bytes.

use zdtm::Checks;

const IOCB_CMD_PREAD: u16 = 0;
const AIO_RING_MAGIC: u32 = 0xa10a10a1;

/// struct iocb.
#[repr(C)]
#[derive(Default)]
struct Iocb {
    data: u64,
    key: u32,
    rw_flags: u32,
    lio_opcode: u16,
    reqprio: i16,
    fildes: u32,
    buf: u64,
    nbytes: u64,
    offset: i64,
    reserved2: u64,
    flags: u32,
    resfd: u32,
}

/// struct io_event.
#[repr(C)]
#[derive(Default, Debug)]
struct IoEvent {
    data: u64,
    obj: u64,
    res: i64,
    res2: i64,
}

/// Read 16 bytes of `fd` through the context: the bytes read or an error.
fn aio_read(ctx: u64, fd: i32) -> Result<Vec<u8>, String> {
    let mut buf = [0u8; 16];
    let mut cb = Iocb { data: 7, lio_opcode: IOCB_CMD_PREAD, fildes: fd as u32, buf: buf.as_mut_ptr() as u64, nbytes: 16, ..Default::default() };
    let mut list = [&mut cb as *mut Iocb];
    // SAFETY: one valid iocb whose buffer outlives the wait below.
    let r = unsafe { libc::syscall(libc::SYS_io_submit, ctx, 1, list.as_mut_ptr()) };
    if r != 1 {
        return Err(format!("io_submit: {r} ({})", zdtm::last_err()));
    }
    let mut ev = IoEvent::default();
    let ts = libc::timespec { tv_sec: 5, tv_nsec: 0 };
    // SAFETY: room for one event, a valid timeout.
    let r = unsafe { libc::syscall(libc::SYS_io_getevents, ctx, 1, 1, &mut ev as *mut IoEvent, &ts as *const libc::timespec) };
    if r != 1 || ev.data != 7 || ev.res < 0 {
        return Err(format!("io_getevents: {r} ({}), event {ev:?}", zdtm::last_err()));
    }
    Ok(buf[..ev.res as usize].to_vec())
}

fn main() {
    zdtm::test_init();
    let path = zdtm::filename();
    let mut data = [0u8; 16];
    zdtm::datagen(&mut data, 7);
    if let Err(e) = std::fs::write(path, data) {
        zdtm::fail(&format!("writing {}: {e}", path.display()));
    }
    let file = std::fs::File::open(path).unwrap_or_else(|e| zdtm::fail(&format!("open {}: {e}", path.display())));
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let mut ctx: u64 = 0;
    // SAFETY: io_setup writes the context into our u64.
    if unsafe { libc::syscall(libc::SYS_io_setup, 16, &mut ctx as *mut u64) } != 0 {
        let e = zdtm::last_err();
        if e.raw_os_error() == Some(libc::ENOSYS) {
            zdtm::skip("no AIO (io_setup) in this kernel");
        }
        zdtm::fail(&format!("io_setup: {e}"));
    }
    // Used once before the dump: the ring's head and tail moved.
    if let Err(e) = aio_read(ctx, fd) {
        zdtm::fail(&e);
    }
    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: destroying our own context.
        unsafe { libc::syscall(libc::SYS_io_destroy, ctx) };
    }
    let mut ck = Checks::new();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let ring = maps.lines().find(|l| l.starts_with(&format!("{ctx:x}-"))).unwrap_or("");
    ck.check(ring.ends_with("/[aio] (deleted)"), || format!("no AIO ring at {ctx:#x} in our maps: {ring:?}"));
    if !ring.is_empty() {
        // SAFETY: the ring's header, mapped at the context's address.
        let magic = unsafe { std::ptr::read_volatile((ctx as *const u32).add(4)) };
        ck.eq("ring magic", magic, AIO_RING_MAGIC);
    }
    ck.eq("a read through the context", aio_read(ctx, fd), Ok(data.to_vec()));
    ck.finish()
}
