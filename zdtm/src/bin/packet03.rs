//! packet03: a SOCK_PACKET socket (the old kind) bound to lo by name,
//! with a filter that lets in only this test's frames. After restore it is
//! still bound to lo and of its type, keeps its filter, and a frame it
//! sends to lo (after another pid's, which the filter drops) comes back
//! to it, from lo.

use zdtm::packet::{self as pk, SOCK_PACKET};
use zdtm::Checks;

const ETH: u16 = 0x88ba;

fn so_int(fd: i32, name: i32) -> i32 {
    let (mut v, mut len) = (0i32, 4u32);
    // SAFETY: the kernel writes one int.
    unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, name, (&mut v as *mut i32).cast(), &mut len) };
    v
}

fn main() {
    zdtm::test_init();
    let me = std::process::id();
    let s = pk::spkt_bound(ETH);
    let prog = pk::filter_prog(14, me);
    pk::attach(s, &prog);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // A fresh unbound SOCK_PACKET socket in its place.
        // SAFETY: dup2 over our own fd.
        unsafe { libc::dup2(pk::socket(SOCK_PACKET, ETH), s) };
    }
    let mut ck = Checks::new();
    ck.eq("address", pk::name(s), Err("lo".to_string()));
    ck.eq("SO_TYPE", so_int(s, libc::SO_TYPE), SOCK_PACKET);
    ck.eq("filter", pk::filter(s), prog.iter().map(|f| (f.code, f.jt, f.jf, f.k)).collect());
    let mut other = pk::frame(ETH, b"not ours");
    other[14..18].copy_from_slice(&(me ^ 0x5a5a).to_be_bytes());
    let ours = pk::frame(ETH, b"packet03");
    for f in [&other, &ours] {
        if let Err(e) = pk::send_spkt(s, f) {
            ck.check(false, || format!("sending: {e}"));
        }
    }
    match pk::recv(s) {
        Ok((got, dev)) => {
            ck.eq("the first frame", got, ours);
            ck.eq("its device", dev, "lo".to_string());
        }
        Err(e) => ck.check(false, || e),
    }
    ck.finish()
}
