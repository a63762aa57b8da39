//! tcp06 (--tcp-established): TCP under traffic, the client in the
//! dumped tree, the server outside it: both stream a numbered byte
//! pattern at each other without pause while the runner dumps and
//! restores the test (many times with --iters). At the end each side
//! counts and checks in order every byte the other sent: none lost, none
//! duplicated.

use zdtm::tcp;
use zdtm::unixsk as u;
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let (l, port) = tcp::listen(32 << 10);
    let c = tcp::connect(port);
    let ctl_name = u::abstract_name("ctl");
    let reply_name = u::abstract_name("verdict");
    let (name, reply) = (ctl_name.clone(), reply_name.clone());
    u::spawn_outside(move |ready| {
        // SAFETY: the test's connection is the test's, not ours.
        unsafe { libc::close(c) };
        let s = tcp::accept(l);
        // SAFETY: the listener is not needed any more.
        unsafe { libc::close(l) };
        let ctl = u::socket(libc::SOCK_DGRAM);
        u::bind(ctl, &name);
        ready();
        tcp::peer_traffic(s, ctl, &reply, 1, 2);
    });
    // SAFETY: the listener is the server's now.
    unsafe { libc::close(l) };
    let mut flows = [tcp::Flow::new(c, 2, 1)];
    tcp::traffic_until_signal(&mut flows);
    let mut ck = Checks::new();
    tcp::finish_with_peer(&mut flows[0], &ctl_name, &reply_name, &mut ck);
    ck.finish()
}
