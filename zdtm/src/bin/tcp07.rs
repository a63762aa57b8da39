//! tcp07 (--tcp-established): TCP under traffic, both ends of a loopback
//! connection in the dumped tree: each streams a numbered byte pattern at
//! the other without pause while the runner dumps and restores the test
//! (many times with --iters). At the end each end counts and checks in
//! order every byte the other sent: none lost, none duplicated.

use zdtm::tcp;
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let (l, port) = tcp::listen(32 << 10);
    let c = tcp::connect(port);
    let s = tcp::accept(l);
    // SAFETY: the listener is not needed any more.
    unsafe { libc::close(l) };
    let mut flows = [tcp::Flow::new(c, 2, 1), tcp::Flow::new(s, 1, 2)];
    tcp::traffic_until_signal(&mut flows);
    let mut ck = Checks::new();
    let (to_s, to_c) = (flows[0].sent, flows[1].sent);
    flows[0].drain_to(to_c);
    flows[1].drain_to(to_s);
    ck.eq("the client's verdict on the server's bytes", flows[0].verdict(to_c), None);
    ck.eq("the server's verdict on the client's bytes", flows[1].verdict(to_s), None);
    ck.check(to_s > 0 && to_c > 0, || format!("no traffic: {to_s} and {to_c} bytes sent"));
    zdtm::log_line(&format!("{to_s} bytes client to server, {to_c} server to client"));
    ck.finish()
}
