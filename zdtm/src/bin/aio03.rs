//! aio03: a child forked after io_setup maps its parent's AIO ring (the
//! same pages, shared) but has no context of its own there: the kernel
//! gives contexts to no child. Dumping that mapping as a ring would give
//! the child a context and a ring of its own: the dump must refuse it by
//! name and leave the tree running. After, the parent's context works and
//! the child still sees the parent's ring move (its tail, after a read),
//! and still has no context at that address. Sabotage: the parent
//! destroys its context.

use zdtm::aio::{self, Iocb, IOCB_CMD_PREAD};
use zdtm::Checks;

/// The child's answer: its io_getevents(ctx, 0, 0) errno (0: a context of
/// its own) and the ring tail it reads in its mapping.
fn serve(ctx: u64, req: i32, rep: i32) {
    let mut b = [0u8; 1];
    // SAFETY: reading one request byte at a time into a local buffer.
    while unsafe { libc::read(req, b.as_mut_ptr().cast(), 1) } == 1 {
        // SAFETY: with min_nr and nr 0 no event is copied, the NULL
        // pointers are never used.
        let r = unsafe { libc::syscall(libc::SYS_io_getevents, ctx, 0, 0, std::ptr::null_mut::<u8>(), std::ptr::null_mut::<u8>()) };
        let errno = if r < 0 { zdtm::last_err().raw_os_error().unwrap_or(-1) } else { 0 };
        let (_, _, tail) = aio::ring_state(ctx);
        let line = format!("{errno} {tail}\n");
        // SAFETY: writing our reply line.
        unsafe { libc::write(rep, line.as_ptr().cast(), line.len()) };
    }
}

fn main() {
    zdtm::test_init();
    let path = zdtm::filename();
    if let Err(e) = std::fs::write(path, b"0123456789abcdef") {
        zdtm::fail(&format!("writing {}: {e}", path.display()));
    }
    let file = std::fs::File::open(path).unwrap_or_else(|e| zdtm::fail(&format!("open {}: {e}", path.display())));
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let ctx = aio::setup(16);
    let (child, req, rep) = zdtm::fork_server(|req, rep| serve(ctx, req, rep));
    // Asked once before we are ready: the child has closed our pipe ends
    // (the runner's snapshot sees its final fds) and sees our ring.
    let (_, _, tail) = aio::ring_state(ctx);
    let first = zdtm::ask_line(req, rep);
    if first != format!("{} {tail}", libc::EINVAL) {
        zdtm::fail(&format!("the child before the dump: {first:?} (want EINVAL and our tail {tail})"));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: destroying our own context.
        unsafe { libc::syscall(libc::SYS_io_destroy, ctx) };
    }

    let mut ck = Checks::new();
    ck.check(aio::ring_mapped(ctx), || format!("no AIO ring at {ctx:#x} in our maps"));
    let mut buf = [0u8; 4];
    let mut cb = [Iocb { data: 3, lio_opcode: IOCB_CMD_PREAD, fildes: fd as u32, buf: buf.as_mut_ptr() as u64, nbytes: 4, ..Default::default() }];
    ck.eq("io_submit", aio::submit(ctx, &mut cb).map_err(|e| e.to_string()), Ok(1));
    match aio::getevents(ctx, 1, 1, 5000) {
        Ok(ev) => ck.eq("the read's event", ev.iter().map(|e| (e.data, e.res)).collect::<Vec<_>>(), vec![(3, 4)]),
        Err(e) => ck.check(false, || format!("io_getevents: {e}")),
    }
    if ck.failed() {
        ck.finish()
    }
    let (_, _, tail) = aio::ring_state(ctx);
    ck.eq("the child: no context of its own, our ring's tail", zdtm::ask_line(req, rep), format!("{} {tail}", libc::EINVAL));
    // SAFETY: ending and reaping our child.
    unsafe {
        libc::kill(child, libc::SIGKILL);
        libc::waitpid(child, std::ptr::null_mut(), 0);
    }
    ck.finish()
}
