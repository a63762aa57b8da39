//! mlock00 and mlock_setuid: locked memory stays locked.
//!
//! Three areas with data: an anonymous one locked with mlock, one mapped
//! MAP_LOCKED, and a shared file mapping locked with mlock; one more area
//! locked and then unlocked must come back unlocked. After the restore
//! each locked area shows `lo` in its VmFlags, /proc/self/status counts
//! them in VmLck, the data is there, and munlock/mlock still work.
//! `setuid`: locked as root, then RLIMIT_MEMLOCK is set to one page (far
//! below what is locked) and the task becomes another user, as CRIU's
//! mlock_setuid: the restore must lock the areas again all the same.

use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use crate::mem::{bytes, has_vmflag, map};
use crate::{Checks, datagen, fail, last_err};

const NP: usize = 8;

fn vm_lck_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn mlock(p: *mut u8, len: usize) {
    // SAFETY: locking our own mapping.
    if unsafe { libc::mlock(p.cast(), len) } != 0 {
        fail(&format!("mlock: {}", last_err()));
    }
}

pub fn run(setuid: bool) -> ! {
    crate::test_init();
    let ps = crate::page_size();
    let len = NP * ps;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    let seed = std::process::id() as u64 * 10;
    let fill = |p: *mut u8, s: u64| {
        let mut want = vec![0u8; len];
        datagen(&mut want, s);
        bytes(p, len).copy_from_slice(&want);
        want
    };
    let a = map("mlock'ed", len, rw, anon, -1, 0);
    let a_want = fill(a, seed + 1);
    mlock(a, len);
    let b = map("MAP_LOCKED", len, rw, anon | libc::MAP_LOCKED, -1, 0);
    let b_want = fill(b, seed + 2);
    let path = crate::filename().with_extension("locked");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap_or_else(|e| fail(&format!("create {}: {e}", path.display())));
    f.set_len(len as u64).unwrap_or_else(|e| fail(&format!("truncate: {e}")));
    let c = map("file shared", len, rw, libc::MAP_SHARED, f.as_raw_fd(), 0);
    let c_want = fill(c, seed + 3);
    mlock(c, len);
    let d = map("unlocked", len, rw, anon, -1, 0);
    let d_want = fill(d, seed + 4);
    mlock(d, len);
    // SAFETY: unlocking our own mapping.
    unsafe { libc::munlock(d.cast(), len) };
    let locked = [("mlock'ed anon", a), ("MAP_LOCKED anon", b), ("mlock'ed shared file", c)];
    for (what, p) in locked {
        if !has_vmflag(p, "lo") {
            fail(&format!("{what}: not locked before the dump"));
        }
    }
    let lck = vm_lck_kb();
    if lck < (3 * len / 1024) as u64 {
        fail(&format!("VmLck is {lck} kB before the dump"));
    }
    if setuid {
        // zdtm's test user.
        let uid: libc::uid_t = 18943;
        // The work dir becomes the user's, as the runner makes it for tests
        // that run as that user (pid file and verdict go there).
        let wd = crate::opts().pidfile.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
        for p in [wd.clone(), wd.join("test.log")] {
            let _ = std::os::unix::fs::chown(&p, Some(uid), Some(uid));
        }
        // A limit below what is locked: only a privileged restore can lock
        // it all again.
        let lim = libc::rlimit { rlim_cur: 4096, rlim_max: 4096 };
        // SAFETY: setrlimit with a valid struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
            fail(&format!("setrlimit(RLIMIT_MEMLOCK): {}", last_err()));
        }
        // SAFETY: plain syscalls changing our own credentials.
        if unsafe { libc::setresgid(uid, uid, uid) } != 0 || unsafe { libc::setresuid(uid, uid, uid) } != 0 {
            fail(&format!("setresuid({uid}): {}", last_err()));
        }
    }

    crate::test_daemon();
    crate::test_waitsig();

    if crate::sabotaged() {
        // SAFETY: unlocking our own mapping.
        unsafe { libc::munlock(b.cast(), len) };
    }
    let mut ck = Checks::new();
    for (what, p) in locked {
        ck.check(has_vmflag(p, "lo"), || format!("{what}: not locked (no lo in VmFlags)"));
    }
    ck.check(!has_vmflag(d, "lo"), || "the unlocked area came back locked".into());
    ck.eq("VmLck (kB)", vm_lck_kb(), lck);
    ck.check(bytes(a, len) == a_want.as_slice(), || "mlock'ed anon: contents differ".into());
    ck.check(bytes(b, len) == b_want.as_slice(), || "MAP_LOCKED anon: contents differ".into());
    ck.check(bytes(c, len) == c_want.as_slice(), || "shared file: contents differ".into());
    ck.check(bytes(d, len) == d_want.as_slice(), || "unlocked anon: contents differ".into());
    let mut on_disk = vec![0u8; len];
    let _ = f.read_exact_at(&mut on_disk, 0);
    ck.check(on_disk == c_want, || "the file behind the locked shared mapping differs".into());
    // SAFETY: unlocking our own mapping.
    let r = unsafe { libc::munlock(a.cast(), len) };
    ck.check(r == 0 && !has_vmflag(a, "lo"), || format!("munlock after the restore: {r} {}", last_err()));
    let _ = std::fs::remove_file(&path);
    ck.finish()
}
