//! File kinds beyond regular files and pipes: unix socket pairs with queued
//! data (stream and datagram) and eventfds, through a dump and a restore.

mod common;

use common::*;

#[test]
fn socketpairs_and_eventfd_survive_dump_and_restore() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    let out = tmp.path().join("out");
    // After SIGUSR1 the task reports what it finds: the queued stream and
    // datagram data on each end, and the eventfd count.
    let script = format!(
        r#"import os,socket,signal,time
a,b=socket.socketpair()
c,d=socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
e=os.eventfd(5)
os.eventfd_write(e, 37)
a.send(b'sock-data'); b.send(b'back')
c.send(b'one'); c.send(b'two')
def h(*x):
    r=[b.recv(100), a.recv(100), d.recv(100), d.recv(100), str(os.eventfd_read(e)).encode()]
    a.send(b'more'); r.append(b.recv(100))
    open('{out}','wb').write(b'|'.join(r))
signal.signal(signal.SIGUSR1,h)
open('{ready}','w').close()
while True: time.sleep(1)
"#,
        out = out.display(),
        ready = ready.display()
    );
    let mut t = Target::spawn(py, &["-c", &script], Some(&ready));
    let pid = t.pid();
    let imgs = dump_killed(&mut t, tmp.path());

    let files = crit(&imgs.join("files.img"));
    let kinds: Vec<&str> = files["entries"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "UNIXSK").count(), 4, "{kinds:?}");
    let efd = files["entries"].as_array().unwrap().iter().find(|e| e["type"] == "EVENTFD").unwrap();
    assert_eq!(efd["efd"]["counter"], 42);
    let q = crit(&imgs.join("sk-queues.img"));
    assert_eq!(q["entries"].as_array().unwrap().len(), 4, "{q}");
    let deb = std::process::Command::new("/usr/bin/crit").args(["decode", "-i"]).arg(imgs.join("sk-queues.img")).output().unwrap();
    assert!(deb.status.success(), "{}", text(&deb.stderr));

    restore_detached(&imgs);
    assert_eq!(ask(pid, &out), "sock-data|back|one|two|42|more");
    kill_and_reap(pid);
}

fn fdinfo(pid: i32, fd: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap()
}

fn field<'a>(info: &'a str, key: &str) -> &'a str {
    info.lines().find_map(|l| l.strip_prefix(key)).map(str::trim).unwrap_or_else(|| panic!("{key} not in {info}"))
}

#[test]
fn timerfd_and_signalfd_keep_their_settings() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    let script = format!(
        r#"import ctypes,os,time
libc=ctypes.CDLL(None, use_errno=True)
class ts(ctypes.Structure): _fields_=[('s',ctypes.c_long),('n',ctypes.c_long)]
class its(ctypes.Structure): _fields_=[('i',ts),('v',ts)]
t=libc.timerfd_create(1, 0o4000)
assert libc.timerfd_settime(t,0,ctypes.byref(its(ts(1,0),ts(30,0))),None)==0
mask=ctypes.c_uint64(1<<11)
s=libc.signalfd(-1, ctypes.byref(mask), 0)
assert (t,s)==(3,4)
open('{ready}','w').close()
while True: time.sleep(1)
"#,
        ready = ready.display()
    );
    let mut t = Target::spawn(py, &["-c", &script], Some(&ready));
    let pid = t.pid();
    let before_t = fdinfo(pid, 3);
    let imgs = dump_killed(&mut t, tmp.path());
    restore_detached(&imgs);

    let tf = fdinfo(pid, 3);
    assert_eq!(field(&tf, "clockid:"), "1");
    assert_eq!(field(&tf, "it_interval:"), "(1, 0)");
    assert_eq!(field(&tf, "flags:"), field(&before_t, "flags:"), "O_NONBLOCK kept");
    let secs: u64 = field(&tf, "it_value:").trim_start_matches('(').split(',').next().unwrap().parse().unwrap();
    assert!((25..30).contains(&secs), "remaining time {secs}s of 30s");
    let sf = fdinfo(pid, 4);
    assert_eq!(field(&sf, "sigmask:"), "0000000000000800");
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/fd/3")).unwrap().to_str().unwrap(), "anon_inode:[timerfd]");
    kill_and_reap(pid);
}

#[test]
fn epoll_keeps_its_targets() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    let out = tmp.path().join("out");
    let script = format!(
        r#"import os,select,socket,signal,time
a,b=socket.socketpair()
e=select.epoll()
e.register(a.fileno(), select.EPOLLIN)
e.register(b.fileno(), select.EPOLLIN)
def h(*x):
    b.send(b'x')
    r=sorted(fd for fd,ev in e.poll(1))
    open('{out}','w').write(repr((r, a.fileno(), b.fileno())))
signal.signal(signal.SIGUSR1,h)
open('{ready}','w').close()
while True: time.sleep(1)
"#,
        out = out.display(),
        ready = ready.display()
    );
    let mut t = Target::spawn(py, &["-c", &script], Some(&ready));
    let pid = t.pid();
    let imgs = dump_killed(&mut t, tmp.path());
    let files = crit(&imgs.join("files.img"));
    let ep = files["entries"].as_array().unwrap().iter().find(|e| e["type"] == "EVENTPOLL").unwrap();
    assert_eq!(ep["epfd"]["tfd"].as_array().unwrap().len(), 2);
    restore_detached(&imgs);
    // Only `a` has data to read: the epoll set still watches both, by fd.
    let got = ask(pid, &out);
    let want_fd = got.split(", ").nth(1).map(str::to_string).unwrap_or_default();
    assert_eq!(got, format!("([{want_fd}], {want_fd}, {})", want_fd.parse::<i32>().unwrap_or(0) + 1), "{got}");
    kill_and_reap(pid);
}

#[test]
fn inotify_watches_keep_their_numbers() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    let out = tmp.path().join("out");
    let (d1, d2) = (tmp.path().join("d1"), tmp.path().join("d2"));
    std::fs::create_dir(&d1).unwrap();
    std::fs::create_dir(&d2).unwrap();
    let script = format!(
        r#"import ctypes,os,signal,struct,time
libc=ctypes.CDLL(None)
i=libc.inotify_init1(0)
w1=libc.inotify_add_watch(i,b'{d1}',0x100)
w2=libc.inotify_add_watch(i,b'{d2}',0x100)
libc.inotify_rm_watch(i,w1)
w3=libc.inotify_add_watch(i,b'{d1}',0x100)
assert (w1,w2,w3)==(1,2,3)
os.read(i,4096)
def h(*x):
    data=os.read(i,4096)
    wd=struct.unpack('i',data[:4])[0]
    open('{out}','w').write(str(wd))
signal.signal(signal.SIGUSR1,h)
open('{ready}','w').close()
while True: time.sleep(1)
"#,
        d1 = d1.display(),
        d2 = d2.display(),
        out = out.display(),
        ready = ready.display()
    );
    let mut t = Target::spawn(py, &["-c", &script], Some(&ready));
    let pid = t.pid();
    let imgs = dump_killed(&mut t, tmp.path());
    let files = crit(&imgs.join("files.img"));
    let ify = files["entries"].as_array().unwrap().iter().find(|e| e["type"] == "INOTIFY").unwrap();
    let wds: Vec<u64> = ify["ify"]["wd"].as_array().unwrap().iter().map(|w| w["wd"].as_u64().unwrap()).collect();
    assert_eq!(wds.len(), 2, "{ify}");
    restore_detached(&imgs);
    std::fs::write(d1.join("new"), b"").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(ask(pid, &out), "3", "the event came from watch 3 (d1, re-added)");
    kill_and_reap(pid);
}

/// A task holding a file lock is refused by name (a lock dropped silently
/// would be lost on restore), and runs on.
#[test]
fn file_locks_are_refused_by_name() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    let lockf = tmp.path().join("lockf");
    for how in ["flock", "lockf"] {
        let script = format!(
            "import fcntl,time\nf=open('{}','w')\nfcntl.{how}(f, fcntl.LOCK_EX)\nopen('{}','w').close()\nwhile True: time.sleep(1)",
            lockf.display(),
            ready.display()
        );
        let _ = std::fs::remove_file(&ready);
        let t = Target::spawn(py, &["-c", &script], Some(&ready));
        let err = dump_refused(t.pid(), &tmp.path().join(format!("imgs-{how}")), &[]);
        assert!(err.contains(&format!("({}) of task {} holds a file lock", lockf.display(), t.pid())) && err.contains("--file-locks"), "{how}: {err}");
    }
}
