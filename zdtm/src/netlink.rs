//! Netlink sockets for the netlink tests: make, bind, subscribe, connect,
//! read the addresses back, and an RTM_GETLINK dump on a route socket.

fn addr(pid: u32, groups: u32) -> libc::sockaddr_nl {
    // SAFETY: an all-zero sockaddr_nl is valid.
    let mut a: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    a.nl_family = libc::AF_NETLINK as u16;
    a.nl_pid = pid;
    a.nl_groups = groups;
    a
}

const LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;

/// A SOCK_RAW netlink socket of `proto` (fails the test otherwise).
pub fn socket(proto: i32) -> i32 {
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, proto) };
    if fd < 0 {
        crate::fail(&format!("netlink socket of protocol {proto}: {}", crate::last_err()));
    }
    fd
}

/// bind(pid, groups): Err(errno text) when the kernel refuses.
pub fn bind(fd: i32, pid: u32, groups: u32) -> Result<(), String> {
    let a = addr(pid, groups);
    // SAFETY: the kernel reads `LEN` bytes of `a`.
    if unsafe { libc::bind(fd, (&a as *const libc::sockaddr_nl).cast(), LEN) } != 0 {
        return Err(format!("bind({pid:#x}, {groups:#x}): {}", crate::last_err()));
    }
    Ok(())
}

/// connect(pid, groups) (fails the test otherwise).
pub fn connect(fd: i32, pid: u32, groups: u32) {
    let a = addr(pid, groups);
    // SAFETY: the kernel reads `LEN` bytes of `a`.
    if unsafe { libc::connect(fd, (&a as *const libc::sockaddr_nl).cast(), LEN) } != 0 {
        crate::fail(&format!("connect({pid:#x}, {groups:#x}): {}", crate::last_err()));
    }
}

/// NETLINK_ADD_MEMBERSHIP of group `g`: Err(errno text) when refused.
pub fn add_group(fd: i32, g: i32) -> Result<(), String> {
    // SAFETY: the kernel reads one int.
    let r = unsafe { libc::setsockopt(fd, libc::SOL_NETLINK, libc::NETLINK_ADD_MEMBERSHIP, (&g as *const i32).cast(), 4) };
    if r != 0 {
        return Err(format!("NETLINK_ADD_MEMBERSHIP {g}: {}", crate::last_err()));
    }
    Ok(())
}

/// (port id, groups) of the socket's own address (`peer`: its peer's).
pub fn name(fd: i32, peer: bool) -> (u32, u32) {
    let mut a = addr(0, 0);
    let mut len = LEN;
    let p = (&mut a as *mut libc::sockaddr_nl).cast();
    // SAFETY: the kernel writes at most `len` bytes into `a`.
    let r = unsafe { if peer { libc::getpeername(fd, p, &mut len) } else { libc::getsockname(fd, p, &mut len) } };
    if r != 0 {
        crate::fail(&format!("get{}name({fd}): {}", if peer { "peer" } else { "sock" }, crate::last_err()));
    }
    (a.nl_pid, a.nl_groups)
}

/// The groups (1-based) NETLINK_LIST_MEMBERSHIPS reports.
pub fn groups(fd: i32) -> Vec<u32> {
    let mut words = [0u32; 8];
    let mut len: libc::socklen_t = 32;
    // SAFETY: the kernel writes at most `len` bytes into `words`.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_NETLINK, libc::NETLINK_LIST_MEMBERSHIPS, words.as_mut_ptr().cast(), &mut len) };
    if r != 0 {
        crate::fail(&format!("NETLINK_LIST_MEMBERSHIPS: {}", crate::last_err()));
    }
    let n = (len as usize / 4).min(words.len());
    (0..n as u32).flat_map(|w| (0..32).filter(move |b| words[w as usize] >> b & 1 != 0).map(move |b| w * 32 + b + 1)).collect()
}

/// Send an RTM_GETLINK dump request on route socket `fd` (to the kernel).
pub fn ask_links(fd: i32) {
    let mut m = Vec::new();
    m.extend_from_slice(&32u32.to_ne_bytes());
    m.extend_from_slice(&libc::RTM_GETLINK.to_ne_bytes());
    m.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    m.extend_from_slice(&7u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[0u8; 16]);
    let k = addr(0, 0);
    // SAFETY: the kernel reads `m` and `k` of the sizes we pass.
    let n = unsafe { libc::sendto(fd, m.as_ptr().cast(), m.len(), 0, (&k as *const libc::sockaddr_nl).cast(), LEN) };
    if n != m.len() as isize {
        crate::fail(&format!("sending RTM_GETLINK: {}", crate::last_err()));
    }
}

/// Read the answer to [`ask_links`] to its NLMSG_DONE: how many links,
/// or Err with what went wrong (`flags`: recv flags, MSG_DONTWAIT to not block).
pub fn read_links(fd: i32, flags: i32) -> Result<usize, String> {
    let mut buf = vec![0u8; 64 << 10];
    let mut links = 0;
    loop {
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) };
        if n <= 0 {
            return Err(format!("recv: {} (after {links} link(s))", crate::last_err()));
        }
        let mut off = 0;
        while off + 16 <= n as usize {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap_or_default()) as usize;
            let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
            match ty {
                t if t == libc::RTM_NEWLINK => links += 1,
                t if t == libc::NLMSG_DONE as u16 => return Ok(links),
                t => return Err(format!("message of type {t} in the answer")),
            }
            if len < 16 {
                return Err("a short message".into());
            }
            off += (len + 3) & !3;
        }
    }
}
