//! sk_unix_dgram00: message queues that only a message-by-message reading
//! gets right. A datagram socket on an abstract name holds an empty
//! datagram between others and one of 150000 bytes (more than a first
//! guess of a buffer); a seqpacket pair holds an empty message first. After
//! restore every message is there, in order, each with its exact length.

use zdtm::unixsk as u;
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let name = u::abstract_name("dg");
    let r = u::socket(libc::SOCK_DGRAM);
    u::bind(r, &name);
    let s = u::socket(libc::SOCK_DGRAM);
    let big_len: libc::c_int = 150_000;
    // SAFETY: setting an int option on our socket.
    unsafe {
        libc::setsockopt(s, libc::SOL_SOCKET, libc::SO_SNDBUF, (&(4 * big_len) as *const libc::c_int).cast(), 4);
    }
    let mut big = vec![0u8; big_len as usize];
    zdtm::datagen(&mut big, 3);
    let msgs: Vec<Vec<u8>> = vec![b"first".to_vec(), Vec::new(), big, b"last".to_vec()];
    for m in &msgs {
        u::send_to(s, m, &name);
    }
    let (a, b) = u::pair(libc::SOCK_SEQPACKET);
    let seq: [&[u8]; 3] = [b"", b"one", b"two"];
    for m in seq {
        u::send(a, m);
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        u::recv(b);
    }

    let mut c = Checks::new();
    for (i, m) in msgs.iter().enumerate() {
        let got = u::recv(r);
        c.check(got.as_ref() == Some(m), || format!("datagram {i}: got {:?} bytes, want {}", got.map(|g| g.len()), m.len()));
    }
    c.eq("datagram queue empty", u::recv(r), None);
    for (i, m) in seq.iter().enumerate() {
        c.eq(&format!("seqpacket message {i}"), u::recv(b), Some(m.to_vec()));
    }
    c.eq("seqpacket queue empty", u::recv(b), None);
    c.finish()
}
