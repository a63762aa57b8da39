//! A loopback connection with data queued both ways, saved in repair mode
//! and restored on a new socket pair: the byte streams go on exactly.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;

use super::*;

fn repair_allowed() -> bool {
    let s = TcpStream::connect(TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
    let Ok(s) = s else { return false };
    set_repair(s.as_fd(), true).is_ok()
}

/// Save both ends of `a`-`b` (in TCP states `states`), close them in
/// repair mode, restore them on new sockets and take those out of repair
/// mode: the streams and the new ends.
fn round_trip(a: TcpStream, b: TcpStream, states: [u32; 2]) -> (Vec<Stream>, TcpStream, TcpStream) {
    let (an, bn) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let mut streams = Vec::new();
    for (s, want) in [&a, &b].into_iter().zip(states) {
        set_repair(s.as_fd(), true).unwrap();
        let (st, state) = save(s.as_fd(), "test").unwrap();
        assert_eq!(state, want);
        streams.push(st);
    }
    // Both go silently (in repair mode), and come back.
    drop((a, b));
    let mut back = Vec::new();
    for ((s, (me, peer)), state) in streams.iter().zip([(an, bn), (bn, an)]).zip(states) {
        let fd = crate::sys::sockopt_raw::socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        set_repair(fd.as_fd(), true).unwrap();
        crate::sys::sockopt_raw::bind(fd.as_fd(), &me).unwrap();
        restore(fd.as_fd(), s, state, &me, &peer, "test").unwrap();
        back.push(fd);
    }
    for fd in &back {
        set_repair(fd.as_fd(), false).unwrap();
    }
    let a2 = TcpStream::from(back.remove(0));
    let b2 = TcpStream::from(back.remove(0));
    for s in [&a2, &b2] {
        s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    }
    (streams, a2, b2)
}

fn tcp_state(s: &TcpStream) -> u8 {
    crate::sys::sockopt_raw::get_bytes(s.as_fd(), libc::SOL_TCP, libc::TCP_INFO, 8).unwrap()[0]
}

#[test]
fn a_half_closed_connection_comes_back_in_fin_wait2_and_close_wait() {
    if !repair_allowed() {
        eprintln!("skipped: TCP_REPAIR not allowed here (needs CAP_NET_ADMIN)");
        return;
    }
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (mut b, _) = l.accept().unwrap();
    a.write_all(b"a's last words").unwrap();
    a.shutdown(std::net::Shutdown::Write).unwrap();
    b.write_all(b"b goes on").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!((tcp_state(&a), tcp_state(&b)), (5, 8));
    let (streams, mut a2, mut b2) = round_trip(a, b, [5, 8]);
    assert_eq!(streams[1].inq, b"a's last words");
    assert_eq!((tcp_state(&a2), tcp_state(&b2)), (5, 8));
    let mut got = Vec::new();
    b2.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"a's last words", "the CLOSE_WAIT end reads the bytes, then end of file");
    b2.write_all(b", and more").unwrap();
    b2.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    a2.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"b goes on, and more");
}

#[test]
fn a_connection_saved_and_restored_keeps_its_queues() {
    if !repair_allowed() {
        eprintln!("skipped: TCP_REPAIR not allowed here (needs CAP_NET_ADMIN)");
        return;
    }
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (mut b, _) = l.accept().unwrap();
    a.write_all(b"from a to b").unwrap();
    b.write_all(b"from b to a, longer").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let (streams, mut a2, mut b2) = round_trip(a, b, [1, 1]);
    assert_eq!(streams[0].inq, b"from b to a, longer");
    assert_eq!(streams[1].inq, b"from a to b");
    a2.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    b2.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 19];
    a2.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"from b to a, longer");
    a2.write_all(b"more").unwrap();
    let mut buf = [0u8; 15];
    b2.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"from a to bmore");
    // The image keeps it all.
    let dir = tempfile::tempdir().unwrap();
    let d = crate::images::ImageDir::open(dir.path()).unwrap();
    write(&d, 77, &streams[0]).unwrap();

    assert_eq!(read(&d, 77).unwrap().as_ref(), Some(&streams[0]));
    assert!(read(&d, 78).unwrap().is_none());
}

#[test]
fn paused_sockets_leave_repair_mode_unless_the_tree_is_gone() {
    if !repair_allowed() {
        eprintln!("skipped: TCP_REPAIR not allowed here (needs CAP_NET_ADMIN)");
        return;
    }
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let repair = |s: &TcpStream| crate::sys::sockopt_raw::get_int(s.as_fd(), libc::SOL_TCP, libc::TCP_REPAIR).unwrap();
    for (keep, want) in [(false, 0), (true, 1)] {
        let mut p = Paused::default();
        p.pause(a.as_fd().try_clone_to_owned().unwrap()).unwrap();
        assert_eq!(repair(&a), 1);
        if keep {
            p.keep();
        }
        drop(p);
        assert_eq!(repair(&a), want, "keep {keep}");
        set_repair(a.as_fd(), false).unwrap();
    }
}
