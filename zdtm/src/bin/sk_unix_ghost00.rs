//! sk_unix_ghost00: unix sockets whose files are gone from their paths
//! (ghosts). A datagram server whose path now holds a FIFO (open in the
//! task), with a connected client and a message queued; a stream listener
//! with a client waiting, its path and its directory removed; a stream
//! socket whose path another socket took. After restore each keeps its
//! name, the client still reaches its server, the listener's waiting
//! connection is accepted, the FIFO is still at the path (the same one the
//! task holds), the removed directory stays removed, and the path's new
//! socket is the one reached through it.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use zdtm::unixsk as u;
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let file = zdtm::filename().to_path_buf();
    let dir = zdtm::dirname().to_path_buf();

    let p1 = file.with_extension("dg");
    let s = u::socket(libc::SOCK_DGRAM);
    u::bind(s, &u::path(&p1));
    let cl = u::socket(libc::SOCK_DGRAM);
    u::connect(cl, &u::path(&p1));
    u::send(cl, b"to ghost");
    std::fs::remove_file(&p1).unwrap();
    zdtm::mkfifo_or_fail(&p1, 0o600);
    let fifo = zdtm::open_or_fail(&p1, libc::O_RDWR);

    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let p2 = dir.join("sub").join("l");
    let l = u::socket(libc::SOCK_STREAM);
    u::bind(l, &u::path(&p2));
    u::listen(l, 3);
    let k = u::socket(libc::SOCK_STREAM);
    u::connect(k, &u::path(&p2));
    std::fs::remove_file(&p2).unwrap();
    std::fs::remove_dir(dir.join("sub")).unwrap();

    let p3 = file.with_extension("st");
    let q = u::socket(libc::SOCK_STREAM);
    u::bind(q, &u::path(&p3));
    std::fs::remove_file(&p3).unwrap();
    let r = u::socket(libc::SOCK_STREAM);
    u::bind(r, &u::path(&p3));

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        u::recv(s);
    }

    let mut c = Checks::new();
    c.eq("server: name", u::name(s), u::path(&p1));
    c.eq("client: peer", u::peer(cl), u::path(&p1));
    c.eq("server: queued message", u::recv(s), Some(b"to ghost".to_vec()));
    u::send(cl, b"again");
    c.eq("server: message after restore", u::recv(s), Some(b"again".to_vec()));
    let md = std::fs::symlink_metadata(&p1);
    c.check(md.as_ref().is_ok_and(|m| m.file_type().is_fifo()), || format!("{} is no FIFO: {md:?}", p1.display()));
    c.eq("the FIFO at the path is the task's", md.map(|m| m.ino()).unwrap_or(0), zdtm::fstat_or_fail(fifo).st_ino);
    // SAFETY: a one-byte write and read on our FIFO.
    let echoed = unsafe { libc::write(fifo, b"f".as_ptr().cast(), 1) == 1 && libc::read(fifo, [0u8; 1].as_mut_ptr().cast(), 1) == 1 };
    c.check(echoed, || "the FIFO does not carry a byte".into());

    c.eq("listener: name", u::name(l), u::path(&p2));
    c.check(!dir.join("sub").exists(), || "the removed directory is back".into());
    match u::accept(l) {
        Some(a) => {
            u::send(k, b"k");
            c.eq("accepted: data", u::recv(a), Some(b"k".to_vec()));
        }
        None => c.check(false, || "listener: the waiting connection is gone".into()),
    }

    c.eq("replaced: name", u::name(q), u::path(&p3));
    c.eq("replacer: name", u::name(r), u::path(&p3));
    u::listen(r, 1);
    let n = u::socket(libc::SOCK_STREAM);
    c.check(u::try_connect(n, &u::path(&p3)).is_ok(), || "the path's socket takes no connection".into());
    c.check(u::accept(r).is_some(), || "the path's socket is not the replacer".into());
    c.finish()
}
