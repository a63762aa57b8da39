//! aio02: an AIO context with a request in flight at dump: a poll
//! (IOCB_CMD_POLL) on the read end of an empty pipe, which completes only
//! when the pipe has data. The kernel holds such a request, not the ring:
//! the dump must refuse the ring and leave us running. After, the request
//! is still there: a byte written to the pipe completes it (its event
//! carries our data and POLLIN), and one unreaped event from before the
//! dump is still reaped first. Sabotage: the request is cancelled.

use zdtm::aio::{self, Iocb, IOCB_CMD_POLL, IOCB_CMD_PREAD};
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let (r, w) = zdtm::pipe_or_fail();
    let path = zdtm::filename();
    if let Err(e) = std::fs::write(path, b"0123456789abcdef") {
        zdtm::fail(&format!("writing {}: {e}", path.display()));
    }
    let file = std::fs::File::open(path).unwrap_or_else(|e| zdtm::fail(&format!("open {}: {e}", path.display())));
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let ctx = aio::setup(16);
    // One completed event left in the ring, then the poll in flight.
    let mut buf = [0u8; 4];
    let mut cbs = [
        Iocb { data: 1, lio_opcode: IOCB_CMD_PREAD, fildes: fd as u32, buf: buf.as_mut_ptr() as u64, nbytes: 4, ..Default::default() },
        Iocb { data: 2, lio_opcode: IOCB_CMD_POLL, fildes: r as u32, buf: libc::POLLIN as u64, ..Default::default() },
    ];
    match aio::submit(ctx, &mut cbs) {
        Ok(2) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => zdtm::skip("no IOCB_CMD_POLL in this kernel"),
        other => zdtm::fail(&format!("io_submit: {other:?}")),
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        let mut ev = aio::IoEvent::default();
        // SAFETY: cancelling our own request; room for one event.
        unsafe { libc::syscall(libc::SYS_io_cancel, ctx, &mut cbs[1] as *mut Iocb, &mut ev as *mut aio::IoEvent) };
    }

    let mut ck = Checks::new();
    ck.check(aio::ring_mapped(ctx), || format!("no AIO ring at {ctx:#x} in our maps"));
    match aio::getevents(ctx, 0, 4, 0) {
        Ok(ev) => ck.eq("events before the poll completes", ev.iter().map(|e| (e.data, e.res)).collect::<Vec<_>>(), vec![(1, 4)]),
        Err(e) => ck.check(false, || format!("io_getevents: {e}")),
    }
    ck.eq("the read's bytes", &buf, b"0123");
    // SAFETY: one byte into our pipe.
    ck.eq("write to the pipe", unsafe { libc::write(w, b"x".as_ptr() as *const libc::c_void, 1) }, 1);
    match aio::getevents(ctx, 1, 4, 5000) {
        Ok(ev) => ck.eq("the poll's event (data, POLLIN)", ev.iter().map(|e| (e.data, e.res & libc::POLLIN as i64)).collect::<Vec<_>>(), vec![(2, libc::POLLIN as i64)]),
        Err(e) => ck.check(false, || format!("io_getevents: {e}")),
    }
    ck.finish()
}
