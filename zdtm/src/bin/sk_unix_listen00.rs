//! sk_unix_listen00: listening unix sockets with connections not accepted
//! yet — a stream listener on a path (backlog 5) with two clients waiting,
//! a seqpacket listener on an abstract name (backlog 2) with one. After
//! restore each listens under its name, and accept() gives exactly the
//! waiting connections, oldest first, each one joined to its own client
//! (whose peer is the listener's name).

use zdtm::unixsk as u;
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let file = zdtm::filename().to_path_buf();
    let l1_name = u::path(&file.with_extension("l1"));
    let l1 = u::socket(libc::SOCK_STREAM);
    u::bind(l1, &l1_name);
    u::listen(l1, 5);
    let c1 = u::socket(libc::SOCK_STREAM);
    u::connect(c1, &l1_name);
    let c2 = u::socket(libc::SOCK_STREAM);
    u::connect(c2, &l1_name);

    let l2_name = u::abstract_name("l2");
    let l2 = u::socket(libc::SOCK_SEQPACKET);
    u::bind(l2, &l2_name);
    u::listen(l2, 2);
    let c3 = u::socket(libc::SOCK_SEQPACKET);
    u::connect(c3, &l2_name);

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        u::accept(l1);
    }

    let mut c = Checks::new();
    for (what, l, name, ty) in [("stream listener", l1, &l1_name, libc::SOCK_STREAM), ("seqpacket listener", l2, &l2_name, libc::SOCK_SEQPACKET)] {
        c.eq(&format!("{what}: name"), u::name(l), name.clone());
        c.eq(&format!("{what}: listening"), u::opt(l, libc::SO_ACCEPTCONN), 1);
        c.eq(&format!("{what}: type"), u::opt(l, libc::SO_TYPE), ty);
    }
    for (what, cl, name) in [("client 1", c1, &l1_name), ("client 2", c2, &l1_name), ("client 3", c3, &l2_name)] {
        c.eq(&format!("{what}: peer"), u::peer(cl), name.clone());
        u::send(cl, what.as_bytes());
    }
    for (l, clients) in [(l1, &["client 1", "client 2"][..]), (l2, &["client 3"][..])] {
        for want in clients {
            match u::accept(l) {
                Some(a) => c.eq(&format!("accepted {want}: first message"), u::recv(a), Some(want.as_bytes().to_vec())),
                None => c.check(false, || format!("no connection to accept for {want}")),
            }
        }
        c.check(u::accept(l).is_none(), || "a connection more than the clients waits".into());
    }
    // The listeners take new clients.
    let c4 = u::socket(libc::SOCK_STREAM);
    u::connect(c4, &l1_name);
    c.check(u::accept(l1).is_some(), || "stream listener: a new client was not accepted".into());
    c.finish()
}
