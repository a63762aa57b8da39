//! sk_unix_bound00: unix sockets bound and not connected — a stream one on
//! a path (mode 0640), a seqpacket one by a relative name through a
//! directory that is not the cwd, a datagram one on an abstract name with
//! three messages queued — and connected datagram sockets: a client
//! (abstract name) connected to a server on a path, a message queued each
//! way. After restore each has its name (getsockname, byte for byte), its
//! type and the queued messages, the path files their mode and owner; the stream and
//! seqpacket sockets listen and are reached through their names, the
//! client's peer is the server and it reaches it again.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use zdtm::unixsk::{self as u, Name};
use zdtm::Checks;

fn reach(c: &mut Checks, what: &str, fd: i32, ty: libc::c_int, addr: &[u8]) {
    u::listen(fd, 1);
    let cl = u::socket(ty);
    if let Err(e) = u::try_connect(cl, addr) {
        c.check(false, || format!("{what}: connect through its name: {e}"));
        return;
    }
    let Some(a) = u::accept(fd) else {
        c.check(false, || format!("{what}: no connection to accept"));
        return;
    };
    u::send(cl, b"hi");
    c.eq(&format!("{what}: data through its name"), u::recv(a), Some(b"hi".to_vec()));
}

fn main() {
    zdtm::test_init();
    let file = zdtm::filename().to_path_buf();
    let dir = zdtm::dirname().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| zdtm::fail(&format!("mkdir {}: {e}", dir.display())));

    let st = u::socket(libc::SOCK_STREAM);
    let st_name = u::path(&file.with_extension("st"));
    u::bind(st, &st_name);
    std::fs::set_permissions(file.with_extension("st"), std::fs::Permissions::from_mode(0o640)).unwrap();

    // The relative name: bound from inside `dir`, then back to the cwd.
    let sq = u::socket(libc::SOCK_SEQPACKET);
    let cwd = std::env::current_dir().unwrap();
    std::env::set_current_dir(&dir).unwrap();
    u::bind(sq, b"sq\0");
    std::env::set_current_dir(&cwd).unwrap();

    let dg = u::socket(libc::SOCK_DGRAM);
    let dg_name = u::abstract_name("dg");
    u::bind(dg, &dg_name);
    let sender = u::socket(libc::SOCK_DGRAM);
    let msgs: [&[u8]; 3] = [b"first", b"second", b"third message"];
    for m in msgs {
        u::send_to(sender, m, &dg_name);
    }

    let srv = u::socket(libc::SOCK_DGRAM);
    let srv_name = u::path(&file.with_extension("srv"));
    u::bind(srv, &srv_name);
    let cli = u::socket(libc::SOCK_DGRAM);
    let cli_name = u::abstract_name("cli");
    u::bind(cli, &cli_name);
    u::connect(cli, &srv_name);
    u::send(cli, b"ping");
    u::send_to(srv, b"pong", &cli_name);
    // A socket option the record carries (it once came back as 0).
    let prio: libc::c_int = 6;
    // SAFETY: one int for SO_PRIORITY on our socket.
    if unsafe { libc::setsockopt(srv, libc::SOL_SOCKET, libc::SO_PRIORITY, (&prio as *const libc::c_int).cast(), 4) } != 0 {
        zdtm::fail(&format!("SO_PRIORITY: {}", zdtm::last_err()));
    }

    let names: Vec<(&str, i32, Name, libc::c_int)> = vec![
        ("stream", st, st_name.clone(), libc::SOCK_STREAM),
        ("seqpacket", sq, b"sq\0".to_vec(), libc::SOCK_SEQPACKET),
        ("dgram", dg, dg_name.clone(), libc::SOCK_DGRAM),
        ("server", srv, srv_name.clone(), libc::SOCK_DGRAM),
        ("client", cli, cli_name.clone(), libc::SOCK_DGRAM),
    ];
    let before: Vec<Name> = names.iter().map(|n| u::name(n.1)).collect();
    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        u::recv(dg);
    }

    let mut c = Checks::new();
    for (i, (what, fd, want, ty)) in names.iter().enumerate() {
        c.eq(&format!("{what}: name"), u::name(*fd), before[i].clone());
        c.eq(&format!("{what}: name as bound"), u::name(*fd), want.clone());
        c.eq(&format!("{what}: type"), u::opt(*fd, libc::SO_TYPE), *ty);
    }
    let md = std::fs::metadata(file.with_extension("st"));
    c.eq("stream: file mode", md.as_ref().map(|m| m.mode() & 0o7777).unwrap_or(0), 0o640);
    // SAFETY: getuid/getgid take nothing.
    let me = unsafe { (libc::getuid(), libc::getgid()) };
    c.eq("stream: file owner", md.as_ref().map(|m| (m.uid(), m.gid())).unwrap_or_default(), me);
    for m in msgs {
        c.eq("dgram: queued message", u::recv(dg), Some(m.to_vec()));
    }
    c.eq("dgram: queue empty", u::recv(dg), None);
    c.eq("server: queued message", u::recv(srv), Some(b"ping".to_vec()));
    c.eq("client: queued message", u::recv(cli), Some(b"pong".to_vec()));
    c.eq("client: peer", u::peer(cli), srv_name.clone());
    c.eq("server: SO_PRIORITY", u::opt(srv, libc::SO_PRIORITY), 6);
    u::send(cli, b"again");
    c.eq("server: message after restore", u::recv(srv), Some(b"again".to_vec()));
    u::send_to(sender, b"more", &dg_name);
    c.eq("dgram: reached through its name", u::recv(dg), Some(b"more".to_vec()));
    reach(&mut c, "stream", st, libc::SOCK_STREAM, &st_name);
    reach(&mut c, "seqpacket", sq, libc::SOCK_SEQPACKET, &u::path(&dir.join("sq")));
    c.finish()
}
