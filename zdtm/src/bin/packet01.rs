//! packet01: a fanout group shared by two raw sockets on lo (hash, with
//! the defrag and rollover flags; the group id from our pid). After
//! restore both are in the group with its type and flags, and of 16
//! frames sent on lo (from 16 source addresses, so the hash spreads them)
//! each reaches exactly one of the two: 16 in all, none twice (two sockets
//! out of the group would each see every frame).

use zdtm::packet::{self as pk, PACKET_FANOUT};
use zdtm::Checks;

const ETH: u16 = 0x88b8;
/// PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_ROLLOVER | PACKET_FANOUT_FLAG_DEFRAG.
const TYPE_FLAGS: u32 = 0x1000 | 0x8000;
const FRAMES: usize = 16;

fn main() {
    zdtm::test_init();
    let me = std::process::id();
    let group = 0x4000 | (me & 0x3fff);
    let word = group | (TYPE_FLAGS << 16);
    let prog = pk::filter_prog(14, me);
    let a = pk::bound(libc::SOCK_RAW, ETH);
    let b = pk::bound(libc::SOCK_RAW, ETH);
    for fd in [a, b] {
        pk::attach(fd, &prog);
        pk::set(fd, PACKET_FANOUT, word as i32);
    }
    // What the kernel says of the group: id | type << 16 | flags << 24.
    let want = group as i32 | (((TYPE_FLAGS >> 8) << 24) as i32);
    if pk::get(a, PACKET_FANOUT) != want {
        zdtm::fail(&format!("PACKET_FANOUT reads {:#x}, not {want:#x}", pk::get(a, PACKET_FANOUT)));
    }
    let tx = pk::bound(libc::SOCK_RAW, 0);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // The second socket out of the group: a fresh one in its place.
        let fresh = pk::bound(libc::SOCK_RAW, ETH);
        pk::attach(fresh, &prog);
        // SAFETY: dup2 over our own fd.
        unsafe { libc::dup2(fresh, b) };
    }
    let mut ck = Checks::new();
    ck.eq("first socket: PACKET_FANOUT", pk::get(a, PACKET_FANOUT), want);
    ck.eq("second socket: PACKET_FANOUT", pk::get(b, PACKET_FANOUT), want);
    for i in 0..FRAMES {
        let mut f = pk::frame(ETH, &[i as u8]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0x10, i as u8]);
        if let Err(e) = pk::send(tx, &f) {
            ck.check(false, || format!("sending frame {i}: {e}"));
        }
    }
    let mut seen = vec![0u32; FRAMES];
    for fd in [a, b] {
        while pk::readable(fd, 300) {
            match pk::recv(fd) {
                Ok((f, _)) if f.len() == 19 && (f[18] as usize) < FRAMES => seen[f[18] as usize] += 1,
                Ok((f, _)) => ck.check(false, || format!("an unexpected frame {f:?}")),
                Err(e) => {
                    ck.check(false, || e);
                    break;
                }
            }
        }
    }
    ck.eq("how often each frame arrived", seen, vec![1; FRAMES]);
    ck.finish()
}
