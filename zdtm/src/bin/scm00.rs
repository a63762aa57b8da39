//! scm00: fds in flight. A message on a unix stream pair carries the
//! write end of a pipe and a file opened at an offset (SCM_RIGHTS); the
//! sender closed its copies, so the queue is the only holder. After the
//! restore the message is received with both fds: the pipe end writes
//! into the pipe whose read end we kept, the file is the same file at the
//! same offset.

use std::os::unix::fs::MetadataExt;

use zdtm::Checks;

fn pair() -> (i32, i32) {
    let mut sv = [0; 2];
    // SAFETY: socketpair fills our array.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()) } != 0 {
        zdtm::fail(&format!("socketpair: {}", zdtm::last_err()));
    }
    (sv[0], sv[1])
}

/// Send `data` with `fds` as SCM_RIGHTS.
fn send_fds(sock: i32, data: &[u8], fds: &[i32]) {
    let mut ctl = vec![0u8; 256];
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut _, iov_len: data.len() };
    // SAFETY: a zeroed msghdr pointing at our iovec and control buffer;
    // the CMSG macros stay inside the buffer we size with CMSG_SPACE.
    unsafe {
        let mut mh: libc::msghdr = std::mem::zeroed();
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        mh.msg_control = ctl.as_mut_ptr().cast();
        mh.msg_controllen = libc::CMSG_SPACE((fds.len() * 4) as u32) as usize;
        let c = libc::CMSG_FIRSTHDR(&mh);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN((fds.len() * 4) as u32) as usize;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast::<i32>(), fds.len());
        if libc::sendmsg(sock, &mh, 0) != data.len() as isize {
            zdtm::fail(&format!("sendmsg: {}", zdtm::last_err()));
        }
    }
}

/// Receive one message without blocking: its bytes and the fds it carried.
fn recv_fds(sock: i32) -> (Vec<u8>, Vec<i32>) {
    let mut buf = vec![0u8; 4096];
    let mut ctl = vec![0u8; 256];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut fds = Vec::new();
    // SAFETY: as in send_fds; the kernel writes at most msg_controllen.
    let n = unsafe {
        let mut mh: libc::msghdr = std::mem::zeroed();
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        mh.msg_control = ctl.as_mut_ptr().cast();
        mh.msg_controllen = ctl.len();
        let n = libc::recvmsg(sock, &mut mh, libc::MSG_DONTWAIT);
        let mut c = libc::CMSG_FIRSTHDR(&mh);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let k = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / 4;
                for i in 0..k {
                    fds.push(*libc::CMSG_DATA(c).cast::<i32>().add(i));
                }
            }
            c = libc::CMSG_NXTHDR(&mh, c);
        }
        n
    };
    buf.truncate(n.max(0) as usize);
    (buf, fds)
}

fn main() {
    zdtm::test_init();
    let path = zdtm::filename().to_path_buf();
    std::fs::write(&path, b"0123456789abcdef").unwrap_or_else(|e| zdtm::fail(&format!("write {}: {e}", path.display())));
    let p = zdtm::cpath(&path);
    // SAFETY: a valid C string; plain syscalls on our fds.
    let file = unsafe { libc::open(p.as_ptr(), libc::O_RDWR) };
    // SAFETY: lseek on our fd takes only integer arguments and touches no memory of ours.
    unsafe { libc::lseek(file, 10, libc::SEEK_SET) };
    let ino = std::fs::metadata(&path).map(|m| m.ino()).unwrap_or(0);
    let mut pp = [0; 2];
    // SAFETY: pipe fills our array.
    if file < 0 || unsafe { libc::pipe(pp.as_mut_ptr()) } != 0 {
        zdtm::fail(&format!("open/pipe: {}", zdtm::last_err()));
    }
    let (a, b) = pair();
    send_fds(a, b"rights", &[pp[1], file]);
    // SAFETY: closing our copies: the queue holds the only ones.
    unsafe {
        libc::close(pp[1]);
        libc::close(file);
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        recv_fds(b);
    }

    let mut c = Checks::new();
    let (data, fds) = recv_fds(b);
    c.eq("message", data, b"rights".to_vec());
    c.eq("fds received", fds.len(), 2);
    if fds.len() == 2 {
        let w = fds[0];
        // SAFETY: writing our bytes into the received pipe end.
        let n = unsafe { libc::write(w, b"ping".as_ptr().cast(), 4) };
        c.eq("write into the received pipe end", n, 4);
        // SAFETY: closing it makes our read end see end of file after.
        unsafe { libc::close(w) };
        let mut got = [0u8; 16];
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::read(pp[0], got.as_mut_ptr().cast(), got.len()) };
        c.eq("read from the kept read end", got[..n.max(0) as usize].to_vec(), b"ping".to_vec());
        // SAFETY: the pipe has no writer left: end of file.
        c.eq("pipe end of file", unsafe { libc::read(pp[0], got.as_mut_ptr().cast(), 1) }, 0);
        let f = fds[1];
        let md = std::fs::metadata(format!("/proc/self/fd/{f}"));
        c.eq("file inode", md.map(|m| m.ino()).unwrap_or(0), ino);
        let mut rest = [0u8; 16];
        // SAFETY: reading from the received file at its offset.
        let n = unsafe { libc::read(f, rest.as_mut_ptr().cast(), rest.len()) };
        c.eq("file read from offset 10", rest[..n.max(0) as usize].to_vec(), b"abcdef".to_vec());
        // SAFETY: F_GETFL on our fd takes only integer arguments and touches no memory of ours.
        c.eq("file flags", unsafe { libc::fcntl(f, libc::F_GETFL) } & libc::O_ACCMODE, libc::O_RDWR);
    }
    c.finish()
}
