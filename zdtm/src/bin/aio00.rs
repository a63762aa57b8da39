//! aio00: an AIO context (io_setup) used once, its ring mapped in our
//! memory, no request in flight. After restore the context still works:
//! its ring is at the context's address (magic 0xa10a10a1) and a read
//! submitted through it completes with the file's bytes.

use zdtm::{aio, Checks};

/// Read 16 bytes of `fd` through the context: the bytes read or an error.
fn aio_read(ctx: u64, fd: i32) -> Result<Vec<u8>, String> {
    let mut buf = [0u8; 16];
    let mut cb = [aio::Iocb { data: 7, lio_opcode: aio::IOCB_CMD_PREAD, fildes: fd as u32, buf: buf.as_mut_ptr() as u64, nbytes: 16, ..Default::default() }];
    match aio::submit(ctx, &mut cb) {
        Ok(1) => {}
        r => return Err(format!("io_submit: {r:?}")),
    }
    let evs = aio::getevents(ctx, 1, 1, 5000).map_err(|e| format!("io_getevents: {e}"))?;
    match evs.first() {
        Some(ev) if ev.data == 7 && ev.res >= 0 => Ok(buf[..ev.res as usize].to_vec()),
        _ => Err(format!("io_getevents: {evs:?}")),
    }
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
    let ctx = aio::setup(16);
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
        ck.eq("ring magic", magic, aio::RING_MAGIC);
    }
    ck.eq("a read through the context", aio_read(ctx, fd), Ok(data.to_vec()));
    ck.finish()
}
