//! packet02: packet rings mapped by the task. A raw socket on lo with a
//! TPACKET_V2 rx ring and tx ring, mapped shared; another with a
//! TPACKET_V3 rx ring (blocks retired after 10 ms), mapped too. Neither is
//! used before the dump (a used ring can't be carried: packet04). After
//! restore each mapping is where it was, the task reads the ring headers
//! through it (every frame the kernel's), sends a frame through the tx
//! ring, and finds it in the first rx frame of the first socket and in the
//! first block of the second.

use zdtm::packet_ring::{RingMap, TP_STATUS_USER};
use zdtm::packet::{self as pk, PACKET_RX_RING, PACKET_TX_RING, PACKET_VERSION};
use zdtm::Checks;

const ETH: u16 = 0x88b9;
const BLOCK: u32 = 8192;
const FRAME: u32 = 2048;

fn main() {
    zdtm::test_init();
    let me = std::process::id();
    let prog = pk::filter_prog(14, me);
    let g = pk::bound(libc::SOCK_RAW, ETH);
    pk::attach(g, &prog);
    pk::set(g, PACKET_VERSION, 1);
    pk::set_ring(g, PACKET_RX_RING, BLOCK, 2, FRAME, 0);
    pk::set_ring(g, PACKET_TX_RING, BLOCK, 1, FRAME, 0);
    let m2 = RingMap::new(g, (BLOCK * 3) as usize);
    let h = pk::bound(libc::SOCK_RAW, ETH);
    pk::attach(h, &prog);
    pk::set(h, PACKET_VERSION, 2);
    pk::set_ring(h, PACKET_RX_RING, BLOCK, 2, FRAME, 10);
    let m3 = RingMap::new(h, (BLOCK * 2) as usize);
    let first_seq = m3.u32_at(24);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // Plain memory in place of the first socket's rings.
        // SAFETY: replaces our own mapping with anonymous memory of its size.
        unsafe {
            libc::mmap(m2.base.cast(), m2.len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED, -1, 0)
        };
    }
    let mut ck = Checks::new();
    for (m, what) in [(&m2, "v2"), (&m3, "v3")] {
        let line = zdtm::maps_entry(m.base as usize).unwrap_or_default();
        ck.check(line.contains("socket:["), || format!("{what} ring mapping: {line:?}, not a socket's"));
    }
    let frames = (BLOCK / FRAME * 2) as usize;
    let statuses: Vec<u32> = (0..frames).map(|i| m2.u32_at(i / 4 * BLOCK as usize + i % 4 * FRAME as usize)).collect();
    ck.eq("v2 rx frame statuses", statuses, vec![0; frames]);
    ck.eq("v3 first block: status, frames, sequence", (m3.u32_at(8), m3.u32_at(12), m3.u32_at(24)), (0, 0, first_seq));
    let ours = pk::frame(ETH, b"packet02 through the tx ring");
    if let Err(e) = m2.v2_tx(g, (BLOCK * 2) as usize, &ours) {
        ck.check(false, || e);
    }
    match m2.v2_rx(g, 0) {
        Ok(f) => ck.eq("v2 rx ring: the first frame", f, ours.clone()),
        Err(e) => ck.check(false, || format!("v2 rx ring: {e}")),
    }
    // v3: the first block, once retired (status USER): its first packet.
    let mut got = Err("the first block was never handed over".to_string());
    for _ in 0..200 {
        if m3.u32_at(8) & TP_STATUS_USER != 0 {
            let first = m3.u32_at(16) as usize;
            let (snap, mac) = (m3.u32_at(first + 12) as usize, m3.u16_at(first + 24) as usize);
            got = Ok((m3.u32_at(12), m3.bytes(first + mac, snap)));
            break;
        }
        pk::readable(h, 10);
    }
    match got {
        Ok((n, f)) => {
            ck.eq("v3 rx ring: frames in the first block", n, 1);
            ck.eq("v3 rx ring: the first frame", f, ours);
        }
        Err(e) => ck.check(false, || format!("v3 rx ring: {e}")),
    }
    ck.finish()
}
