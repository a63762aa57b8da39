//! scm01: sender credentials in flight. The receiving end of a unix
//! datagram pair has SO_PASSCRED and a message queued: each message then
//! carries its sender's pid, uid and gid (SCM_CREDENTIALS). A restore
//! would queue it again from another process, so the dump must refuse it;
//! the task runs on and receives the message with our own credentials.

use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let mut sv = [0; 2];
    // SAFETY: socketpair fills our array.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM, 0, sv.as_mut_ptr()) } != 0 {
        zdtm::fail(&format!("socketpair: {}", zdtm::last_err()));
    }
    let on: libc::c_int = 1;
    // SAFETY: setting an int option on our socket.
    unsafe { libc::setsockopt(sv[1], libc::SOL_SOCKET, libc::SO_PASSCRED, (&on as *const libc::c_int).cast(), 4) };
    // SAFETY: sending our bytes.
    if unsafe { libc::send(sv[0], b"creds".as_ptr().cast(), 5, 0) } != 5 {
        zdtm::fail(&format!("send: {}", zdtm::last_err()));
    }
    let me = std::process::id() as i32;

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: drain the message.
        unsafe { libc::recv(sv[1], [0u8; 8].as_mut_ptr().cast(), 8, libc::MSG_DONTWAIT) };
    }

    let mut c = Checks::new();
    let mut buf = [0u8; 16];
    let mut ctl = [0u8; 128];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut cred: Option<libc::ucred> = None;
    // SAFETY: a zeroed msghdr over our buffers; the CMSG macros stay in ctl.
    let n = unsafe {
        let mut mh: libc::msghdr = std::mem::zeroed();
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        mh.msg_control = ctl.as_mut_ptr().cast();
        mh.msg_controllen = ctl.len();
        let n = libc::recvmsg(sv[1], &mut mh, libc::MSG_DONTWAIT);
        let mut h = libc::CMSG_FIRSTHDR(&mh);
        while !h.is_null() {
            if (*h).cmsg_level == libc::SOL_SOCKET && (*h).cmsg_type == libc::SCM_CREDENTIALS {
                cred = Some(std::ptr::read_unaligned(libc::CMSG_DATA(h).cast::<libc::ucred>()));
            }
            h = libc::CMSG_NXTHDR(&mh, h);
        }
        n
    };
    c.eq("message", buf[..n.max(0) as usize].to_vec(), b"creds".to_vec());
    // SAFETY: getuid takes no arguments and touches no memory of ours.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    c.eq("sender credentials", cred.map(|u| (u.pid, u.uid, u.gid)), Some((me, uid, gid)));
    c.finish()
}
