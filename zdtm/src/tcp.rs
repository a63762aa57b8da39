//! TCP on loopback for the established-connection tests (tcp00, tcp01):
//! a listener with a small receive buffer (so a writer's send queue
//! fills), connect, accept, a byte pattern written until the peer's
//! window closes, and reads with a time limit.

/// Byte `i` of the pattern of stream `seed`.
pub fn pattern(seed: u8, i: usize) -> u8 {
    ((i * 7 + usize::from(seed) * 13 + 3) % 251) as u8
}

fn sockaddr(port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be() },
        sin_zero: [0; 8],
    }
}

const SALEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;

/// A TCP listener on 127.0.0.1 (any port) whose accepted sockets get a
/// receive buffer of `rcvbuf` bytes: (fd, port).
pub fn listen(rcvbuf: i32) -> (i32, u16) {
    // SAFETY: plain syscalls on our own socket and locals.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if fd < 0 {
            crate::fail(&format!("socket: {}", crate::last_err()));
        }
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, (&rcvbuf as *const i32).cast(), 4);
        let sa = sockaddr(0);
        if libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), SALEN) != 0 || libc::listen(fd, 4) != 0 {
            crate::fail(&format!("bind/listen on 127.0.0.1: {}", crate::last_err()));
        }
        let mut got = sockaddr(0);
        let mut len = SALEN;
        libc::getsockname(fd, (&mut got as *mut libc::sockaddr_in).cast(), &mut len);
        (fd, u16::from_be(got.sin_port))
    }
}

/// A TCP socket connected to 127.0.0.1:`port`.
pub fn connect(port: u16) -> i32 {
    // SAFETY: plain syscalls on our own socket and a local address.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        let sa = sockaddr(port);
        if fd < 0 || libc::connect(fd, (&sa as *const libc::sockaddr_in).cast(), SALEN) != 0 {
            crate::fail(&format!("connect to 127.0.0.1:{port}: {}", crate::last_err()));
        }
        fd
    }
}

/// accept(2) on `fd`.
pub fn accept(fd: i32) -> i32 {
    // SAFETY: plain syscall, no address wanted.
    let c = unsafe { libc::accept(fd, std::ptr::null_mut(), std::ptr::null_mut()) };
    if c < 0 {
        crate::fail(&format!("accept: {}", crate::last_err()));
    }
    c
}

/// Write pattern `seed` from byte `from`, without blocking, until the
/// socket takes no more or `max` bytes are written: the count written.
pub fn fill(fd: i32, seed: u8, from: usize, max: usize) -> usize {
    let mut n = 0;
    while n < max {
        let chunk: Vec<u8> = (from + n..from + max.min(n + 4096)).map(|i| pattern(seed, i)).collect();
        // SAFETY: sending our buffer.
        let r = unsafe { libc::send(fd, chunk.as_ptr().cast(), chunk.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if r <= 0 {
            break;
        }
        n += r as usize;
    }
    n
}

/// Read exactly `n` bytes, waiting at most 10 s for each: what came.
pub fn read_n(fd: i32, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut buf = vec![0u8; 65536];
    while out.len() < n {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: polling one local pollfd; reading into our buffer.
        let r = unsafe {
            if libc::poll(&mut p, 1, 10_000) != 1 {
                break;
            }
            libc::recv(fd, buf.as_mut_ptr().cast(), (n - out.len()).min(buf.len()), libc::MSG_DONTWAIT)
        };
        if r <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..r as usize]);
    }
    out
}

/// Where `got` first differs from pattern `seed` from byte `from`.
pub fn mismatch(got: &[u8], seed: u8, from: usize) -> Option<usize> {
    got.iter().enumerate().position(|(i, b)| *b != pattern(seed, from + i))
}

/// The bytes waiting in `fd`'s send queue (SIOCOUTQ).
pub fn outq(fd: i32) -> i32 {
    let mut v: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one int.
    unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut v) };
    v
}

/// Write all of `b` (blocking).
pub fn fill_bytes(fd: i32, b: &[u8]) {
    let mut off = 0;
    while off < b.len() {
        // SAFETY: sending from our buffer.
        let r = unsafe { libc::send(fd, b[off..].as_ptr().cast(), b.len() - off, libc::MSG_NOSIGNAL) };
        if r <= 0 {
            return;
        }
        off += r as usize;
    }
}

/// TCP states as TCP_INFO gives them.
pub const ESTABLISHED: u8 = 1;
pub const FIN_WAIT1: u8 = 4;
pub const FIN_WAIT2: u8 = 5;
pub const CLOSE_WAIT: u8 = 8;
pub const LAST_ACK: u8 = 9;
pub const CLOSING: u8 = 11;

/// The TCP state of `fd` (TCP_INFO's first byte); 0 if it can't be read.
pub fn state(fd: i32) -> u8 {
    let mut info = [0u8; 8];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into our buffer.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_TCP, libc::TCP_INFO, info.as_mut_ptr().cast(), &mut len) };
    if r != 0 {
        return 0;
    }
    info[0]
}

/// Wait up to 5 s for `fd` to be in TCP state `want`.
pub fn wait_state(fd: i32, want: u8) -> bool {
    for _ in 0..500 {
        if state(fd) == want {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// shutdown(fd, SHUT_WR).
pub fn shut_wr(fd: i32) {
    // SAFETY: plain syscall on our socket.
    if unsafe { libc::shutdown(fd, libc::SHUT_WR) } != 0 {
        crate::fail(&format!("shutdown(SHUT_WR): {}", crate::last_err()));
    }
}

/// Whether the next read of `fd` gives end of file (waiting up to 10 s).
pub fn at_eof(fd: i32) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let mut b = [0u8; 1];
    // SAFETY: one local pollfd; a one-byte read into our buffer.
    unsafe { libc::poll(&mut p, 1, 10_000) == 1 && libc::recv(fd, b.as_mut_ptr().cast(), 1, libc::MSG_DONTWAIT) == 0 }
}

/// One direction pair of a connection under steady traffic: bytes of
/// pattern `out` sent in order, bytes of pattern `inp` received and
/// checked in order, each byte counted once.
pub struct Flow {
    pub fd: i32,
    out: u8,
    inp: u8,
    pub sent: usize,
    pub got: usize,
    /// The first received byte that broke the pattern (its index).
    pub bad: Option<usize>,
    /// What ended the flow early: end of file or an error.
    pub broken: Option<String>,
}

impl Flow {
    /// Buffer sizes are set (so the kernel does not tune them on its
    /// own) and the socket made non-blocking.
    pub fn new(fd: i32, out: u8, inp: u8) -> Flow {
        let buf: libc::c_int = 64 << 10;
        // SAFETY: plain fcntl and setsockopt on our socket with a local int.
        unsafe {
            libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK);
            for o in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
                libc::setsockopt(fd, libc::SOL_SOCKET, o, (&buf as *const libc::c_int).cast(), 4);
            }
        }
        Flow { fd, out, inp, sent: 0, got: 0, bad: None, broken: None }
    }

    /// Send up to `max` more bytes (without blocking).
    pub fn send(&mut self, max: usize) {
        let chunk: Vec<u8> = (self.sent..self.sent + max).map(|i| pattern(self.out, i)).collect();
        // SAFETY: sending from our buffer.
        let r = unsafe { libc::send(self.fd, chunk.as_ptr().cast(), chunk.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if r > 0 {
            self.sent += r as usize;
        } else if r < 0 {
            let e = crate::last_err();
            if e.raw_os_error() != Some(libc::EAGAIN) && self.broken.is_none() {
                self.broken = Some(format!("send after {} bytes: {e}", self.sent));
            }
        }
    }

    /// Take in what is queued (without blocking), checking it.
    pub fn recv(&mut self) {
        self.recv_at_most(usize::MAX);
    }

    /// Take in at most `max` of the bytes queued (without blocking).
    pub fn recv_at_most(&mut self, mut max: usize) {
        let mut buf = vec![0u8; 65536];
        while max > 0 {
            // SAFETY: receiving into our buffer, at most its length.
            let r = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len().min(max), libc::MSG_DONTWAIT) };
            if r == 0 {
                if self.broken.is_none() {
                    self.broken = Some(format!("end of file after {} bytes", self.got));
                }
                return;
            }
            if r < 0 {
                let e = crate::last_err();
                if e.raw_os_error() != Some(libc::EAGAIN) && self.broken.is_none() {
                    self.broken = Some(format!("recv after {} bytes: {e}", self.got));
                }
                return;
            }
            let n = r as usize;
            max -= n;
            if self.bad.is_none()
                && let Some(at) = mismatch(&buf[..n], self.inp, self.got)
            {
                self.bad = Some(self.got + at);
            }
            self.got += n;
        }
    }

    /// One round: wait up to `ms` for the socket, send a chunk of `chunk`
    /// bytes and take in what came.
    pub fn step(&mut self, ms: i32, chunk: usize) {
        let events = if chunk != 0 { libc::POLLIN | libc::POLLOUT } else { libc::POLLIN };
        let mut p = libc::pollfd { fd: self.fd, events, revents: 0 };
        // SAFETY: one local pollfd.
        unsafe { libc::poll(&mut p, 1, ms) };
        if chunk != 0 {
            self.send(chunk);
        }
        self.recv();
    }

    /// Receive until `total` bytes came in all (waiting up to 5 s), and
    /// whatever more comes within 200 ms (bytes that should not be there).
    pub fn drain_to(&mut self, total: usize) {
        let t0 = std::time::Instant::now();
        while self.got < total && self.broken.is_none() && t0.elapsed() < std::time::Duration::from_secs(5) {
            self.step(10, 0);
        }
        self.step(200, 0);
    }

    /// What went wrong, if anything, with `want` bytes to have come in.
    pub fn verdict(&self, want: usize) -> Option<String> {
        if let Some(b) = &self.broken {
            return Some(b.clone());
        }
        if let Some(at) = self.bad {
            return Some(format!("byte {at} of the stream is wrong (lost or duplicated bytes)"));
        }
        (self.got != want).then(|| format!("{} bytes came where {want} were sent", self.got))
    }
}

/// Bytes each side sends per round under traffic, and the round's length.
pub const TRAFFIC_CHUNK: usize = 8192;
const TRAFFIC_MS: u64 = 5;

/// One round of traffic on `flows`: every `TRAFFIC_MS` each flow sends a
/// chunk and takes in half a chunk of what came, so that both queues of
/// every connection stay full (the window closes, the sender's queue
/// holds sent and unsent bytes) whenever a dump comes.
pub fn pump(flows: &mut [Flow], last: &mut std::time::Instant) {
    std::thread::sleep(std::time::Duration::from_millis(TRAFFIC_MS).saturating_sub(last.elapsed()));
    if last.elapsed() >= std::time::Duration::from_millis(TRAFFIC_MS) {
        *last = std::time::Instant::now();
        for f in flows.iter_mut() {
            f.send(TRAFFIC_CHUNK);
            f.recv_at_most(TRAFFIC_CHUNK / 2);
        }
    }
}

/// The peer outside the tree under traffic (tcp05, tcp06): sends pattern
/// `out` and checks pattern `inp` on `fd` until the test sends "stop S"
/// on datagram socket `ctl`; then it stops sending, takes in the test's S
/// bytes and answers "SENT VERDICT" to the test's datagram socket `reply`.
pub fn peer_traffic(fd: i32, ctl: i32, reply: &[u8], out: u8, inp: u8) -> ! {
    let mut f = [Flow::new(fd, out, inp)];
    let mut last = std::time::Instant::now();
    loop {
        pump(&mut f, &mut last);
        let Some(m) = crate::unixsk::recv(ctl) else { continue };
        let f = &mut f[0];
        let want: usize = String::from_utf8_lossy(m.strip_prefix(b"stop ").unwrap_or(b"")).parse().unwrap_or(0);
        f.drain_to(want);
        let v = f.verdict(want).unwrap_or_else(|| "ok".into());
        crate::unixsk::send_to(ctl, format!("{} {v}", f.sent).as_bytes(), reply);
        std::thread::sleep(std::time::Duration::from_secs(2));
        // SAFETY: leaving the peer process.
        unsafe { libc::_exit(0) }
    }
}

/// The test's side under traffic: every flow sends and receives until
/// the runner's signal (dumps and restores happen meanwhile). Sabotaged,
/// one byte more goes out on the first flow's socket behind its back.
pub fn traffic_until_signal(flows: &mut [Flow]) {
    let mut last = std::time::Instant::now();
    // Under way, the queues filling, before the runner looks.
    for _ in 0..40 {
        pump(flows, &mut last);
    }
    crate::test_daemon();
    while crate::test_go() {
        pump(flows, &mut last);
    }
    crate::after_signal();
    if crate::sabotaged() {
        // Once the send buffer has room (the peer reads on; so do we, for
        // a peer in the test).
        for _ in 0..500 {
            // SAFETY: one byte from a local buffer.
            if unsafe { libc::send(flows[0].fd, [0xffu8].as_ptr().cast(), 1, libc::MSG_NOSIGNAL) } == 1 {
                break;
            }
            flows.iter_mut().for_each(Flow::recv);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// The end of a flow with an outside peer: "stop SENT" to the peer's
/// datagram socket `ctl_name`, its answer on ours (`reply_name`), the
/// peer's bytes taken in; checks counts and order both ways.
pub fn finish_with_peer(f: &mut Flow, ctl_name: &[u8], reply_name: &[u8], ck: &mut crate::Checks) {
    let v = crate::unixsk::socket(libc::SOCK_DGRAM);
    crate::unixsk::bind(v, reply_name);
    let go = crate::unixsk::socket(libc::SOCK_DGRAM);
    crate::unixsk::send_to(go, format!("stop {}", f.sent).as_bytes(), ctl_name);
    let mut answer = None;
    for _ in 0..3000 {
        f.step(10, 0);
        if let Some(a) = crate::unixsk::recv(v) {
            answer = Some(String::from_utf8_lossy(&a).to_string());
            break;
        }
    }
    let Some(answer) = answer else {
        ck.check(false, || "the outside peer never answered".into());
        return;
    };
    let (sent, verdict) = answer.split_once(' ').unwrap_or((&answer, ""));
    let sent: usize = sent.parse().unwrap_or(0);
    ck.eq("the outside peer's verdict on the test's bytes", verdict.to_string(), "ok".to_string());
    f.drain_to(sent);
    ck.eq("the test's verdict on the outside peer's bytes", f.verdict(sent), None);
    ck.check(f.sent > 0 && sent > 0, || format!("no traffic: {} bytes sent, {sent} received", f.sent));
    crate::log_line(&format!("{} bytes sent, {sent} received", f.sent));
}

/// A connection to a server outside the tree (forked by
/// `unixsk::spawn_outside`): the test's end, and the abstract names of
/// the server's control socket and of the test's verdict socket.
pub struct Outside {
    pub fd: i32,
    pub ctl: crate::unixsk::Name,
    pub reply: crate::unixsk::Name,
}

/// Listen on loopback (receive buffer `rcvbuf`), connect, and fork the
/// server outside the tree: it accepts, drops the test's copies, binds
/// its control dgram socket and runs `serve(its end, control socket,
/// verdict name, ready)`, which never comes back.
pub fn outside_server(rcvbuf: i32, serve: impl FnOnce(i32, i32, &[u8], &dyn Fn())) -> Outside {
    use crate::unixsk as u;
    let (l, port) = listen(rcvbuf);
    let c = connect(port);
    let out = Outside { fd: c, ctl: u::abstract_name("ctl"), reply: u::abstract_name("verdict") };
    let (name, reply) = (out.ctl.clone(), out.reply.clone());
    u::spawn_outside(move |ready| {
        // SAFETY: the test's connection is the test's, not ours.
        unsafe { libc::close(c) };
        let s = accept(l);
        // SAFETY: the listener is not needed any more.
        unsafe { libc::close(l) };
        let ctl = u::socket(libc::SOCK_DGRAM);
        u::bind(ctl, &name);
        serve(s, ctl, &reply, ready);
    });
    // SAFETY: the listener is the server's now.
    unsafe { libc::close(l) };
    out
}

/// In the outside server: queue `n` bytes of pattern `seed` for the
/// test, or leave (exit code 3) when they don't fit.
pub fn fill_or_leave(s: i32, seed: u8, n: usize) {
    if fill(s, seed, 0, n) != n {
        // SAFETY: leaving the server process.
        unsafe { libc::_exit(3) }
    }
}
