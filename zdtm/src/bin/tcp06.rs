//! tcp06 (--tcp-established): TCP under traffic, the client in the
//! dumped tree, the server outside it: both stream a numbered byte
//! pattern at each other without pause while the runner dumps and
//! restores the test (many times with --iters). At the end each side
//! counts and checks in order every byte the other sent: none lost, none
//! duplicated.

use zdtm::tcp;
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let o = tcp::outside_server(32 << 10, |s, ctl, reply, ready| {
        ready();
        tcp::peer_traffic(s, ctl, reply, 1, 2);
    });
    let (c, ctl_name, reply_name) = (o.fd, o.ctl, o.reply);
    let mut flows = [tcp::Flow::new(c, 2, 1)];
    tcp::traffic_until_signal(&mut flows);
    let mut ck = Checks::new();
    tcp::finish_with_peer(&mut flows[0], &ctl_name, &reply_name, &mut ck);
    ck.finish()
}
