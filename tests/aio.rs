//! AIO requests in flight at dump (`criu::mem::aio::settle`) against a
//! real task (`tests/helpers/aio_target.rs`: two unreaped reads and a poll
//! in flight on an empty pipe), seized as the dump seizes it. A poll that
//! completes while the dump waits is taken in: its event follows the
//! task's, the ring's head and tail as before, and the dump goes on; one
//! that does not is refused by name.
//! Either way the task, released, reaps its events in order, unharmed by
//! the probe's own requests. Needs root (ptrace).

#![cfg(target_arch = "x86_64")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::Target;
use criu::compel::Seized;
use criu::task::remote::Ctl;
use nix::unistd::Pid;

/// The target, ready: (its context, its pipe's write end).
fn start(dir: &Path) -> (Target, u64, i32) {
    let t = Target::spawn(common::helper("aio_target").to_str().unwrap(), &[dir.to_str().unwrap()], Some(&dir.join("ready")));
    let ready = std::fs::read_to_string(dir.join("ready")).unwrap();
    let mut w = ready.split_whitespace().map(|s| s.parse::<u64>().unwrap());
    let (ctx, wfd) = (w.next().unwrap(), w.next().unwrap());
    (t, ctx, wfd as i32)
}

/// Make the poll complete: a byte into the target's pipe.
fn poke(pid: i32, wfd: i32) {
    std::fs::write(format!("/proc/{pid}/fd/{wfd}"), b"x").unwrap();
}

/// The ring's size, head and tail, from its header.
fn header(pid: i32, ctx: u64) -> (u32, u32, u32) {
    use std::os::unix::fs::FileExt;
    let mut h = [0u8; 16];
    criu::proc::mem(pid).unwrap().read_exact_at(&mut h, ctx).unwrap();
    let w = |i: usize| u32::from_le_bytes(h[i * 4..i * 4 + 4].try_into().unwrap());
    (w(1), w(2), w(3))
}

/// The ring's unreaped event count.
fn unreaped(pid: i32, ctx: u64) -> u32 {
    let (nr, head, tail) = header(pid, ctx);
    (tail + nr - head) % nr
}

/// Let the target reap its events: (data, res) of each.
fn reaped(dir: &Path) -> Vec<(u64, i64)> {
    std::fs::write(dir.join("go"), b"").unwrap();
    for _ in 0..500 {
        if let Ok(s) = std::fs::read_to_string(dir.join("events")) {
            return s
                .lines()
                .map(|l| {
                    let mut w = l.split_whitespace();
                    (w.next().unwrap().parse().unwrap(), w.next().unwrap().parse().unwrap())
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the target reported no events");
}

/// Seize the target, settle its rings (poking its pipe after `poke_after`
/// when given), release it: settle's result.
fn settle(pid: i32, wfd: i32, poke_after: Option<Duration>) -> anyhow::Result<()> {
    let seized = Seized::seize(Pid::from_raw(pid)).unwrap();
    let mut ctl = Ctl::new(seized);
    let poker = poke_after.map(|d| {
        std::thread::spawn(move || {
            std::thread::sleep(d);
            poke(pid, wfd);
        })
    });
    let r = criu::mem::aio::settle(pid, &mut ctl);
    if let Some(p) = poker {
        p.join().unwrap();
    }
    ctl.drop_scratch().unwrap();
    ctl.seized.release().unwrap();
    r
}

#[test]
fn a_request_completing_while_the_dump_waits_is_taken_in() {
    let tmp = common::tmpdir();
    let (t, ctx, wfd) = start(tmp.path());
    let pid = t.pid();
    let (nr, head, tail) = header(pid, ctx);
    let r = settle(pid, wfd, Some(Duration::from_millis(200)));
    assert!(r.is_ok(), "{r:?}");
    // As before, the poll's event after the reads: the probe's requests
    // went round the ring.
    assert_eq!(header(pid, ctx), (nr, head, (tail + 1) % nr), "the ring's header, before: {:?}", (nr, head, tail));
    assert_eq!(unreaped(pid, ctx), 3, "the two reads and the poll");
    let ev = reaped(tmp.path());
    assert_eq!(ev.iter().map(|e| e.0).collect::<Vec<_>>(), vec![2, 3, 9], "{ev:?}");
    assert_eq!((ev[0].1, ev[1].1, ev[2].1 & 1), (8, 8, 1), "{ev:?}");
}

#[test]
fn a_request_still_in_flight_is_refused() {
    let tmp = common::tmpdir();
    let (t, ctx, wfd) = start(tmp.path());
    let pid = t.pid();
    let e = settle(pid, wfd, None).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains(&format!("task {pid}: AIO ring at {ctx:#x}")) && msg.contains("1 request(s) in flight"), "{msg}");
    assert_eq!(unreaped(pid, ctx), 2, "the two reads, the probe's requests gone");
    poke(pid, wfd);
    let ev = reaped(tmp.path());
    assert_eq!(ev.iter().map(|e| e.0).collect::<Vec<_>>(), vec![2, 3, 9], "{ev:?}");
}
