//! packet04: a TPACKET_V2 rx ring used before the dump: a frame received
//! and handed back, so the kernel fills the second frame next. That place
//! can't be carried (a restore makes the ring anew, filling its first
//! frame), so the dump must be refused by name, leaving the task running;
//! the ring then still fills its second frame.

use zdtm::packet_ring::{RingMap, TP_STATUS_USER};
use zdtm::packet::{self as pk, PACKET_RX_RING, PACKET_VERSION};
use zdtm::Checks;

const ETH: u16 = 0x88bc;
const BLOCK: u32 = 8192;
const FRAME: u32 = 2048;

fn main() {
    zdtm::test_init();
    let me = std::process::id();
    let prog = pk::filter_prog(14, me);
    let g = pk::bound(libc::SOCK_RAW, ETH);
    pk::attach(g, &prog);
    pk::set(g, PACKET_VERSION, 1);
    pk::set_ring(g, PACKET_RX_RING, BLOCK, 1, FRAME, 0);
    let m = RingMap::new(g, BLOCK as usize);
    let tx = pk::bound(libc::SOCK_RAW, 0);
    let first = pk::frame(ETH, b"first");
    if let Err(e) = pk::send(tx, &first) {
        zdtm::fail(&e);
    }
    match m.v2_rx(g, 0) {
        Ok(f) if f == first => m.set_u32(0, 0),
        Ok(f) => zdtm::fail(&format!("the first frame is {f:?}")),
        Err(e) => zdtm::fail(&e),
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // The first frame the program's again: the kernel skips it.
        m.set_u32(0, TP_STATUS_USER);
    }
    let mut ck = Checks::new();
    let second = pk::frame(ETH, b"second");
    if let Err(e) = pk::send(tx, &second) {
        ck.check(false, || e);
    }
    match m.v2_rx(g, FRAME as usize) {
        Ok(f) => ck.eq("the second rx frame", f, second),
        Err(e) => ck.check(false, || e),
    }
    ck.eq("the first rx frame's status", m.u32_at(0), 0);
    ck.finish()
}
