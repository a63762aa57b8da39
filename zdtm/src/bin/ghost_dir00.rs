//! ghost_dir00: a directory removed while this task holds it open and has
//! it as its cwd, and a device node (a copy of /dev/null, mode 0640)
//! unlinked while held open. After restore both are there again as they
//! were: the directory fd and the cwd are that directory (no links left),
//! the node is a character device 1:3 with its mode, and writes to it
//! succeed.

use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let base = zdtm::dirname().to_path_buf();
    let sub = base.join("gone");
    let node = base.join("null");
    std::fs::create_dir_all(&sub).unwrap_or_else(|e| zdtm::fail(&format!("mkdir {}: {e}", sub.display())));
    let dfd = zdtm::open_or_fail(&sub, libc::O_RDONLY | libc::O_DIRECTORY);
    let cn = zdtm::cpath(&node);
    let cs = zdtm::cpath(&sub);
    // SAFETY: valid C strings; plain filesystem calls.
    unsafe {
        if libc::mknod(cn.as_ptr(), libc::S_IFCHR | 0o640, libc::makedev(1, 3)) != 0 {
            zdtm::skip(&format!("mknod: {}", zdtm::last_err()));
        }
    }
    let nfd = zdtm::open_or_fail(&node, libc::O_WRONLY);
    // SAFETY: valid C strings; plain filesystem calls.
    unsafe {
        if libc::chdir(cs.as_ptr()) != 0 || libc::rmdir(cs.as_ptr()) != 0 || libc::unlink(cn.as_ptr()) != 0 {
            zdtm::fail(&format!("chdir/rmdir/unlink: {}", zdtm::last_err()));
        }
    }
    let (d0, n0) = (zdtm::fstat_or_fail(dfd), zdtm::fstat_or_fail(nfd));

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: fchmod on our fd.
        unsafe { libc::fchmod(nfd, 0o600) };
    }

    let mut ck = Checks::new();
    let (d, n) = (zdtm::fstat_or_fail(dfd), zdtm::fstat_or_fail(nfd));
    let cwd = zdtm::open_or_fail(std::path::Path::new("."), libc::O_RDONLY | libc::O_DIRECTORY);
    let c = zdtm::fstat_or_fail(cwd);
    ck.eq("dir: type and mode", d.st_mode, d0.st_mode);
    ck.eq("dir: links", d.st_nlink, 0);
    ck.eq("cwd is the directory", (c.st_dev, c.st_ino), (d.st_dev, d.st_ino));
    ck.check(!sub.exists(), || format!("{} exists again", sub.display()));
    ck.eq("node: type and mode", n.st_mode, n0.st_mode);
    ck.eq("node: device", n.st_rdev, n0.st_rdev);
    ck.eq("node: links", n.st_nlink, 0);
    ck.check(!node.exists(), || format!("{} exists again", node.display()));
    // SAFETY: writing a literal to our fd.
    ck.eq("write to the node", unsafe { libc::write(nfd, b"x".as_ptr().cast(), 1) }, 1);
    ck.finish()
}
