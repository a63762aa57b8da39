//! memfd mappings: a tree mapping memfds (shared, shared by a child,
//! private with copied-on-write pages; sealed or not; a size that is no
//! multiple of the page) is dumped in CRIU 4.2's memfd form (MEMFD files,
//! memfd.img, pagemap-shmem-INODE.img) and restored with the same names,
//! contents, sizes, modes, seals and VmFlags, twice in a row (the restored task
//! dumps again, and once more before either task touches its mappings:
//! the memfd's pages then lie in the page cache only, not in the tasks'
//! page tables).
//!
//! The program's report waits for its child's answer (up to 30 s, the child
//! named when it never answers or is gone), so a loaded machine slows the
//! test down rather than failing it.

mod common;

use common::*;

fn script(ready: &std::path::Path, out: &std::path::Path) -> String {
    format!(
        r#"import os,signal,time,fcntl,ctypes
libc=ctypes.CDLL(None,use_errno=True)
libc.mmap.restype=ctypes.c_void_p
libc.mmap.argtypes=[ctypes.c_void_p,ctypes.c_size_t,ctypes.c_int,ctypes.c_int,ctypes.c_int,ctypes.c_long]
ps=os.sysconf('SC_PAGE_SIZE')
def mmap(n,prot,flags,fd,off=0):
    a=libc.mmap(None,n,prot,flags,fd,off)
    assert a and a!=ctypes.c_void_p(-1).value, ctypes.get_errno()
    return a
RW=3; SHARED=1; PRIVATE=2
a=os.memfd_create('shm',os.MFD_ALLOW_SEALING)
asz=3*ps+100
os.ftruncate(a,asz)
ma=mmap(asz,RW,SHARED,a)
ctypes.memmove(ma,b'hello',5); ctypes.memmove(ma+2*ps,b'world',5); ctypes.memmove(ma+3*ps+95,b'tail!',5)
fcntl.fcntl(a,fcntl.F_ADD_SEALS,fcntl.F_SEAL_GROW|fcntl.F_SEAL_SHRINK)
b=os.memfd_create('/dev/zero',0)
os.write(b,b'B'*(2*ps))
os.fchmod(b,0o640)
mb=mmap(2*ps,RW,PRIVATE,b)
ctypes.memmove(mb,b'cow',3)
mb2=mmap(ps,1,SHARED,b,ps)
os.close(a); os.close(b)
U=signal.SIGUSR1
# SIGUSR1 kills a task without a handler: blocked over the fork, each side
# unblocks it once its handler is in place (a signal sent before waits).
signal.pthread_sigmask(signal.SIG_BLOCK,[U])
child=os.fork()
if child==0:
    def c(*x):
        ctypes.memmove(ma+ps,b'child',5)
        open('{out}.child','w').write('1')
    # A child slow to start, as on a loaded machine: the first report's
    # signal comes before its handler is in place, every run.
    time.sleep(0.3)
    signal.signal(U,c)
    signal.pthread_sigmask(signal.SIG_UNBLOCK,[U])
    while True: time.sleep(1)
def info(addr):
    for l in open('/proc/self/maps'):
        f=l.split()
        s,e=[int(x,16) for x in f[0].split('-')]
        if s==addr:
            fd=os.open('/proc/self/map_files/'+f[0],os.O_RDONLY)
            st=os.fstat(fd); seals=fcntl.fcntl(fd,fcntl.F_GET_SEALS); os.close(fd)
            return '%s %s %d %o %d' % (f[1],' '.join(f[5:]),st.st_size,st.st_mode&0o7777,seals)
    return 'missing'
def vmflags(addr):
    on=False
    for l in open('/proc/self/smaps'):
        if not l[0].isupper() and '-' in l.split()[0]:
            on=int(l.split('-')[0],16)==addr
        elif on and l.startswith('VmFlags:'):
            return ' '.join(sorted(l.split()[1:]))
    return 'missing'
def h(*x):
    try: os.unlink('{out}.child')
    except FileNotFoundError: pass
    os.kill(child,U)
    answer='no answer from the child in 30 s'
    for i in range(3000):
        if os.path.exists('{out}.child'): answer=None; break
        if os.waitpid(child,os.WNOHANG)[0]: answer='the child is gone'; break
        time.sleep(0.01)
    r=[info(ma),info(mb),info(mb2),
       ctypes.string_at(ma,5).decode(),answer or ctypes.string_at(ma+ps,5).decode(),ctypes.string_at(ma+2*ps,5).decode(),ctypes.string_at(ma+3*ps+95,5).decode(),
       ctypes.string_at(mb,4).decode(),ctypes.string_at(mb+ps,1).decode(),ctypes.string_at(mb2,1).decode(),
       vmflags(ma),vmflags(mb),vmflags(mb2)]
    ctypes.memmove(ma+ps,b'-----',5)
    open('{out}.tmp','w').write('|'.join(r))
    os.rename('{out}.tmp','{out}')
signal.signal(U,h)
signal.pthread_sigmask(signal.SIG_UNBLOCK,[U])
open('{ready}','w').close()
while True: time.sleep(1)
"#,
        out = out.display(),
        ready = ready.display()
    )
}

fn memfd_supported() -> bool {
    nix::sys::memfd::memfd_create(c"probe", nix::sys::memfd::MFdFlags::MFD_ALLOW_SEALING).is_ok()
}

#[test]
fn memfd_mappings_come_back_with_names_contents_and_seals_twice() {
    let Some(py) = python() else { return };
    if !memfd_supported() {
        eprintln!("skipped: memfd_create(MFD_ALLOW_SEALING) is not available");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    let out = tmp.path().join("out");
    let mut t = Target::spawn(py, &["-c", &script(&ready, &out)], Some(&ready));
    let pid = t.pid();
    let before = report(pid, &out);
    let n = 4096 * 3 + 100;
    let (sa, sb) = (libc::F_SEAL_GROW | libc::F_SEAL_SHRINK, libc::F_SEAL_SEAL);
    let f: Vec<&str> = before.split('|').collect();
    assert_eq!(f.len(), 13, "the program's own view before any dump: {before}");
    // The mode of "shm" is the kernel's default (vm.memfd_noexec decides).
    assert!(f[0].starts_with(&format!("rw-s /memfd:shm (deleted) {n} ")) && f[0].ends_with(&format!(" {sa}")), "{before}");
    assert_eq!(f[1], format!("rw-p /memfd:/dev/zero (deleted) 8192 640 {sb}"), "{before}");
    assert_eq!(f[2], format!("r--s /memfd:/dev/zero (deleted) 8192 640 {sb}"), "{before}");
    assert_eq!(f[3..10], ["hello", "child", "world", "tail!", "cowB", "B", "B"], "{before}");
    // VmFlags: the read-only shared mapping of a read-write file may become writable.
    assert!(f[12].split(' ').any(|x| x == "mw"), "{before}");
    std::fs::remove_file(&out).unwrap();

    let child: i32 = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap().trim().parse().unwrap();
    let _cleanup = KillOnDrop([pid, child]);
    let imgs = dump_killed(&mut t, tmp.path());
    all_gone(&[child]);
    let inodes = crit(&imgs.join("memfd.img"));
    let e = inodes["entries"].as_array().unwrap();
    assert_eq!(e.len(), 2, "{inodes}");
    // Inodes are listed in the order the dump met them (VMA addresses vary).
    let shm = e.iter().find(|i| i["name"] == "shm").unwrap_or_else(|| panic!("no inode named shm: {inodes}"));
    assert_eq!(shm["size"], n, "{inodes}");
    assert!(e.iter().any(|i| i["name"] == "/dev/zero"), "{inodes}");
    let files = crit(&imgs.join("files.img"));
    let memfds: Vec<_> = files["entries"].as_array().unwrap().iter().filter(|f| f["type"] == "MEMFD").collect();
    assert_eq!(memfds.len(), 2, "one file per inode: {files}");
    for ino in e {
        let shm = imgs.join(format!("pagemap-shmem-{}.img", ino["shmid"]));
        assert!(shm.exists(), "{} for {ino}", shm.display());
    }
    let mm = crit(&imgs.join(format!("mm-{pid}.img")));
    let memfd_vmas = mm["entries"][0]["vmas"].as_array().unwrap().iter().filter(|v| v["status"].as_str().unwrap().contains("VMA_AREA_MEMFD")).count();
    assert_eq!(memfd_vmas, 3, "{mm}");
    if std::path::Path::new("/usr/bin/crit").exists() {
        let deb = std::process::Command::new("/usr/bin/crit").args(["decode", "-i"]).arg(imgs.join("memfd.img")).output().unwrap();
        assert!(deb.status.success(), "CRIU's crit on memfd.img: {}", text(&deb.stderr));
    }

    restore_detached(&imgs);
    assert_eq!(report(pid, &out), before, "after the first restore");
    std::fs::remove_file(&out).unwrap();

    // The restored tree dumps and restores again.
    let again = tmp.path().join("again");
    std::fs::create_dir_all(&again).unwrap();
    let o = criu(&["dump", "-t", &pid.to_string(), "-D", again.to_str().unwrap()]);
    assert!(o.status.success(), "second dump: {}", text(&o.stderr));
    all_gone(&[pid, child]);
    restore_detached(&again);
    // Dumped again at once, before either task touches its mappings: the
    // restore filled the objects through mappings of its own, so their
    // pages are in the page cache, not in the tasks' page tables.
    for p in [pid, child] {
        let rss = shm_rss_kb(p);
        eprintln!("task {p}: Rss of its /memfd:shm mapping after the second restore: {rss} kB");
    }
    let third = tmp.path().join("third");
    std::fs::create_dir_all(&third).unwrap();
    let o = criu(&["dump", "-t", &pid.to_string(), "-D", third.to_str().unwrap()]);
    assert!(o.status.success(), "third dump: {}", text(&o.stderr));
    all_gone(&[pid, child]);
    restore_detached(&third);
    assert_eq!(report(pid, &out), before, "after the third restore (dumped untouched)");
}

/// The Rss (kB) of task `pid`'s mapping of memfd "shm", from its smaps.
fn shm_rss_kb(pid: i32) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut on = false;
    for l in smaps.lines() {
        if l.split_whitespace().next().is_some_and(|f| f.contains('-') && !f.ends_with(':')) {
            on = l.contains("/memfd:shm (deleted)");
        } else if on && l.starts_with("Rss:") {
            return l.split_whitespace().nth(1).unwrap().parse().unwrap();
        }
    }
    panic!("task {pid} maps no /memfd:shm: {smaps}");
}

/// Send the program SIGUSR1 and return its report: written whole (renamed
/// into place), after up to 30 s for its child's answer, so waited for up
/// to 60 s. A child that never answers is named in the report.
fn report(pid: i32, out: &std::path::Path) -> String {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGUSR1).unwrap();
    let t0 = std::time::Instant::now();
    while !out.exists() && t0.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::fs::read_to_string(out).unwrap_or_default()
}

/// Kills the restored tree at the end of the test, passed or not (only
/// while each pid is still our program's: pids are reused).
struct KillOnDrop([i32; 2]);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &p in &self.0 {
            let ours = std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains("memfd_create('shm'"));
            if ours {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
            }
        }
        let _ = std::panic::catch_unwind(|| all_gone(&self.0));
    }
}

/// Reap what we (a subreaper) are left until none of `pids` exists.
fn all_gone(pids: &[i32]) {
    if !wait_gone(pids, std::time::Duration::from_secs(5)).is_empty() {
        panic!("{pids:?} still exist");
    }
}
