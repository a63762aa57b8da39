//! aio01: an AIO context whose ring holds completed but unreaped events at
//! dump, the ring wrapped round (head near the end, tail past the start).
//! Some were reaped from user space (the ring's head moved by hand, as
//! libaio does). After restore the events are reaped in order with their
//! data, object and result, their buffers hold the bytes read, and a new
//! read submitted on the same context completes. A second, bigger context (a ring of five
//! pages) holds unreaped events across its page boundaries. Sabotage: one
//! event is reaped before the checks, which must then miss it.

use zdtm::aio::{self, Iocb, IOCB_CMD_PREAD};
use zdtm::Checks;

/// Read-and-reap rounds before the pending ones: the ring's head and tail
/// go past its end (127 events on one page) only after these.
const ROUNDS: usize = 100;
/// Reads completed before the dump, of which `REAPED` reaped with
/// io_getevents, then `USER_REAPED` from user space (the head moved by
/// hand, as libaio does: the kernel has not counted those slots free yet).
const PENDING: usize = 40;
const REAPED: usize = 5;
const USER_REAPED: usize = 2;
const CHUNK: usize = 8;
const FILE_LEN: usize = 64;
/// The bigger context: asked for this many events, holding `BIG_PENDING`.
const BIG_NR: u32 = 300;
const BIG_PENDING: usize = 200;

fn read_cb(fd: i32, data: u64, buf: &mut [u8; CHUNK], off: usize) -> Iocb {
    Iocb {
        data,
        lio_opcode: IOCB_CMD_PREAD,
        fildes: fd as u32,
        buf: buf.as_mut_ptr() as u64,
        nbytes: CHUNK as u64,
        offset: (off % FILE_LEN) as i64,
        ..Default::default()
    }
}

fn main() {
    zdtm::test_init();
    let path = zdtm::filename();
    let mut data = [0u8; FILE_LEN];
    zdtm::datagen(&mut data, 11);
    if let Err(e) = std::fs::write(path, data) {
        zdtm::fail(&format!("writing {}: {e}", path.display()));
    }
    let file = std::fs::File::open(path).unwrap_or_else(|e| zdtm::fail(&format!("open {}: {e}", path.display())));
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let ctx = aio::setup(16);

    // Round the ring: one read submitted and reaped at a time.
    let mut scratch = [0u8; CHUNK];
    for i in 0..ROUNDS {
        let mut cb = [read_cb(fd, i as u64, &mut scratch, i * CHUNK)];
        if aio::submit(ctx, &mut cb).map_err(|e| e.to_string()) != Ok(1) {
            zdtm::fail(&format!("io_submit (round {i}): {}", zdtm::last_err()));
        }
        match aio::getevents(ctx, 1, 1, 5000) {
            Ok(ev) if ev.len() == 1 && ev[0].data == i as u64 => {}
            other => zdtm::fail(&format!("round {i}: io_getevents gave {other:?}")),
        }
    }
    // The pending reads: completed (a buffered read completes in io_submit),
    // left in the ring.
    let mut bufs = vec![[0u8; CHUNK]; PENDING];
    let mut cbs: Vec<Iocb> = bufs.iter_mut().enumerate().map(|(i, b)| read_cb(fd, 1000 + i as u64, b, i * CHUNK)).collect();
    match aio::submit(ctx, &mut cbs) {
        Ok(n) if n == PENDING => {}
        other => zdtm::fail(&format!("io_submit of {PENDING}: {other:?}")),
    }
    match aio::getevents(ctx, REAPED, REAPED, 5000) {
        Ok(ev) if ev.len() == REAPED => {}
        other => zdtm::fail(&format!("reaping {REAPED}: {other:?}")),
    }
    let by_hand: Vec<u64> = aio::user_reap(ctx, USER_REAPED as u32).iter().map(|e| e.data).collect();
    if by_hand != (REAPED..REAPED + USER_REAPED).map(|i| 1000 + i as u64).collect::<Vec<_>>() {
        zdtm::fail(&format!("reaping {USER_REAPED} from user space gave {by_hand:?}"));
    }
    let (_, head, tail) = aio::ring_state(ctx);
    if tail >= head {
        zdtm::fail(&format!("the ring did not wrap: head {head} tail {tail}"));
    }
    let big = aio::setup(BIG_NR);
    let mut big_bufs = vec![[0u8; CHUNK]; BIG_PENDING];
    let mut big_cbs: Vec<Iocb> = big_bufs.iter_mut().enumerate().map(|(i, b)| read_cb(fd, 5000 + i as u64, b, i * CHUNK)).collect();
    match aio::submit(big, &mut big_cbs) {
        Ok(n) if n == BIG_PENDING => {}
        other => zdtm::fail(&format!("io_submit of {BIG_PENDING} on the bigger context: {other:?}")),
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        let _ = aio::getevents(ctx, 1, 1, 0);
    }

    let mut ck = Checks::new();
    ck.check(aio::ring_mapped(ctx), || format!("no AIO ring at {ctx:#x} in our maps"));
    let left = PENDING - REAPED - USER_REAPED;
    match aio::getevents(ctx, 0, PENDING, 0) {
        Ok(ev) => {
            ck.eq("unreaped events", ev.len(), left);
            let want = |i: usize| aio::IoEvent { data: 1000 + i as u64, obj: &cbs[i] as *const Iocb as u64, res: CHUNK as i64, res2: 0 };
            let first = REAPED + USER_REAPED;
            if let Some((k, e)) = ev.iter().enumerate().find(|(k, e)| **e != want(first + k)) {
                ck.eq(&format!("the first unreaped event that differs (#{k})"), *e, want(first + k));
            }
        }
        Err(e) => ck.check(false, || format!("io_getevents: {e}")),
    }
    ck.check(aio::ring_mapped(big), || format!("no AIO ring at {big:#x} in our maps"));
    match aio::getevents(big, 0, BIG_PENDING + 1, 0) {
        Ok(ev) => {
            ck.eq("unreaped events of the bigger context", ev.len(), BIG_PENDING);
            let want = |i: usize| (5000 + i as u64, &big_cbs[i] as *const Iocb as u64, CHUNK as i64);
            if let Some((k, e)) = ev.iter().enumerate().find(|(k, e)| (e.data, e.obj, e.res) != want(*k)) {
                ck.eq(&format!("the first event of the bigger context that differs (#{k})"), (e.data, e.obj, e.res), want(k));
            }
        }
        Err(e) => ck.check(false, || format!("io_getevents on the bigger context: {e}")),
    }
    for (i, b) in big_bufs.iter().enumerate() {
        let off = (i * CHUNK) % FILE_LEN;
        if b[..] != data[off..off + CHUNK] {
            ck.eq(&format!("buffer of read {i} on the bigger context"), &b[..], &data[off..off + CHUNK]);
            break;
        }
    }
    for (i, b) in bufs.iter().enumerate() {
        let off = (i * CHUNK) % FILE_LEN;
        ck.eq(&format!("buffer of read {i}"), &b[..], &data[off..off + CHUNK]);
    }
    // The context goes on: a new read through it.
    let mut buf = [0u8; CHUNK];
    let mut cb = [read_cb(fd, 7777, &mut buf, 16)];
    ck.eq("io_submit after restore", aio::submit(ctx, &mut cb).map_err(|e| e.to_string()), Ok(1));
    match aio::getevents(ctx, 1, 1, 5000) {
        Ok(ev) => {
            ck.eq("the new read's event", ev.first().map(|e| (e.data, e.res)), Some((7777, CHUNK as i64)));
            ck.eq("the new read's bytes", &buf[..], &data[16..16 + CHUNK]);
        }
        Err(e) => ck.check(false, || format!("io_getevents after restore: {e}")),
    }
    ck.finish()
}
