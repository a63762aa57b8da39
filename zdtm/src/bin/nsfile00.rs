//! nsfile00: fds open on this task's own namespace files (/proc/self/ns/
//! net, uts, ipc, mnt, pid, user, cgroup, and time where the kernel has
//! it). After restore each fd is again the file of the namespace the task
//! is in (same inode as /proc/self/ns/KIND, same link text), with its
//! flags.

use std::os::unix::fs::MetadataExt;

use zdtm::Checks;

const KINDS: [&str; 8] = ["net", "uts", "ipc", "mnt", "pid", "user", "cgroup", "time"];

fn main() {
    zdtm::test_init();
    let mut fds = Vec::new();
    for k in KINDS {
        let p = std::path::PathBuf::from(format!("/proc/self/ns/{k}"));
        if !p.exists() {
            continue;
        }
        fds.push((k, zdtm::open_or_fail(&p, libc::O_RDONLY)));
    }
    if fds.len() < 7 {
        zdtm::skip("fewer than 7 namespace kinds under /proc/self/ns");
    }
    // SAFETY: fcntl queries on our fds.
    let flags: Vec<i32> = fds.iter().map(|(_, fd)| unsafe { libc::fcntl(*fd, libc::F_GETFL) }).collect();

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: dup2 between our own fds.
        unsafe { libc::dup2(fds[1].1, fds[0].1) };
    }

    let mut ck = Checks::new();
    for ((k, fd), fl) in fds.iter().zip(flags) {
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let want = std::fs::read_link(format!("/proc/self/ns/{k}")).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        ck.eq(&format!("{k}: the namespace"), link, want);
        let ino = std::fs::metadata(format!("/proc/self/fd/{fd}")).map(|m| m.ino()).unwrap_or(0);
        let own = std::fs::metadata(format!("/proc/self/ns/{k}")).map(|m| m.ino()).unwrap_or(1);
        ck.eq(&format!("{k}: inode"), ino, own);
        // SAFETY: fcntl query.
        ck.eq(&format!("{k}: flags"), unsafe { libc::fcntl(*fd, libc::F_GETFL) }, fl);
    }
    ck.finish()
}
