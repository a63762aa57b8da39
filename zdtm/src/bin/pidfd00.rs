//! pidfd00: pidfds of every kind of process a task can name: a live child
//! L (PIDFD_NONBLOCK), L's child G (a task of the tree that is not ours),
//! a zombie child Z (exited with 5, not reaped), a child D killed and reaped,
//! and the task itself. After restore each pidfd names its process again
//! (fdinfo's Pid), keeps its flags, and works: signal 0 reaches us and not
//! the dead D (ESRCH; its exit status, where the kernel keeps one, is
//! still SIGKILL), waitid through Z's gets its status 5, a SIGKILL
//! through G's turns G into a zombie of L, and L's (non-blocking: EAGAIN
//! while L lives) reports L killed by the SIGKILL sent through it.

use zdtm::Checks;

fn fork() -> i32 {
    // SAFETY: we are single-threaded here; the child only runs this
    // program's own code (pause loops, _exit).
    let p = unsafe { libc::fork() };
    if p < 0 {
        zdtm::fail(&format!("fork: {}", zdtm::last_err()));
    }
    p
}

fn pause_forever() -> ! {
    loop {
        // SAFETY: pause takes no arguments.
        unsafe { libc::pause() };
    }
}

fn pidfd_open(pid: i32, flags: libc::c_int) -> i32 {
    // SAFETY: pidfd_open takes a pid and flags.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) } as i32;
    if fd < 0 {
        let e = zdtm::last_err();
        if e.raw_os_error() == Some(libc::ENOSYS) {
            zdtm::skip("no pidfd_open in this kernel");
        }
        zdtm::fail(&format!("pidfd_open({pid}): {e}"));
    }
    fd
}

/// pidfd_send_signal: Ok or the errno.
fn send(fd: i32, sig: i32) -> Result<(), i32> {
    // SAFETY: descriptor and signal numbers, a null siginfo.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd, sig, std::ptr::null::<libc::siginfo_t>(), 0) };
    if r == 0 { Ok(()) } else { Err(zdtm::last_err().raw_os_error().unwrap_or(0)) }
}

/// waitid(P_PIDFD, fd, WEXITED): (pid, code, status) or the errno.
fn wait_pidfd(fd: i32) -> Result<(i32, i32, i32), i32> {
    // SAFETY: a zeroed siginfo filled by waitid.
    let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid into our siginfo.
    let r = unsafe { libc::waitid(libc::P_PIDFD, fd as libc::id_t, &mut si, libc::WEXITED) };
    if r != 0 {
        return Err(zdtm::last_err().raw_os_error().unwrap_or(0));
    }
    // SAFETY: waitid filled the child fields.
    Ok(unsafe { (si.si_pid(), si.si_code, si.si_status()) })
}

fn fdinfo_pid(fd: i32) -> String {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix("Pid:")).map(|v| v.trim().to_string()).unwrap_or_else(|| "none".into())
}

fn state_of(pid: i32) -> Option<(char, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = s[s.rfind(')')? + 2..].split(' ');
    Some((f.next()?.chars().next()?, f.next()?.parse().ok()?))
}

fn getfl(fd: i32) -> i32 {
    // SAFETY: fcntl query.
    unsafe { libc::fcntl(fd, libc::F_GETFL) }
}

fn main() {
    zdtm::test_init();
    let me = std::process::id() as i32;
    let g_pid = zdtm::shared_counter();
    let mut ready = [0; 2];
    // SAFETY: a valid array of two ints.
    if unsafe { libc::pipe(ready.as_mut_ptr()) } != 0 {
        zdtm::fail(&format!("pipe: {}", zdtm::last_err()));
    }
    let l = fork();
    if l == 0 {
        if fork() == 0 {
            g_pid.store(std::process::id() as u64, std::sync::atomic::Ordering::SeqCst);
            zdtm::say_ready(ready);
            pause_forever();
        }
        zdtm::say_ready(ready);
        pause_forever();
    }
    // SAFETY: closing our write end.
    unsafe { libc::close(ready[1]) };
    zdtm::wait_ready_closed(ready[0]);
    let g = g_pid.load(std::sync::atomic::Ordering::SeqCst) as i32;

    let d = fork();
    if d == 0 {
        pause_forever();
    }
    let pd = pidfd_open(d, 0);
    // Killed by SIGKILL: the way a restore's stand-in dies.
    // SAFETY: kill takes integers.
    unsafe { libc::kill(d, libc::SIGKILL) };
    // SAFETY: reaping our child, no status wanted.
    if unsafe { libc::waitpid(d, std::ptr::null_mut(), 0) } != d {
        zdtm::fail(&format!("waitpid({d}): {}", zdtm::last_err()));
    }
    let z = fork();
    if z == 0 {
        // SAFETY: leave at once.
        unsafe { libc::_exit(5) };
    }
    let pz = pidfd_open(z, 0);
    // A zombie by the dump: wait for its exit without reaping it.
    // SAFETY: a zeroed siginfo filled by waitid.
    let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid into our siginfo.
    if unsafe { libc::waitid(libc::P_PID, z as libc::id_t, &mut si, libc::WEXITED | libc::WNOWAIT) } != 0 {
        zdtm::fail(&format!("waitid(WNOWAIT) for {z}: {}", zdtm::last_err()));
    }
    let pl = pidfd_open(l, libc::O_NONBLOCK);
    let pg = pidfd_open(g, 0);
    let ps = pidfd_open(me, 0);
    let d_exit = zdtm::pidfd_exit_status(pd);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // L's pidfd names us now.
        // SAFETY: dup2 between our own fds.
        unsafe { libc::dup2(ps, pl) };
    }
    let mut ck = Checks::new();
    for (name, fd, want) in [("L", pl, l), ("G", pg, g), ("Z", pz, z), ("D (reaped)", pd, -1), ("self", ps, me)] {
        ck.eq(&format!("fdinfo Pid of {name}'s pidfd"), fdinfo_pid(fd), want.to_string());
    }
    let nb = libc::O_NONBLOCK;
    ck.eq("O_NONBLOCK of L's, G's, Z's, D's, self's", [pl, pg, pz, pd, ps].map(|f| getfl(f) & nb), [nb, 0, 0, 0, 0]);
    ck.eq("signal 0 through self's", send(ps, 0), Ok(()));
    ck.eq("signal 0 through D's", send(pd, 0), Err(libc::ESRCH));
    ck.eq("D's exit status (PIDFD_GET_INFO, where the kernel keeps it)", zdtm::pidfd_exit_status(pd), d_exit);
    ck.eq("waitid through Z's", wait_pidfd(pz), Ok((z, libc::CLD_EXITED, 5)));
    ck.eq("waitid through L's while L lives", wait_pidfd(pl), Err(libc::EAGAIN));
    if ck.failed() {
        // A pidfd may name another process (us): no SIGKILL through them.
        cleanup(l, g);
        ck.finish()
    }
    ck.eq("SIGKILL through G's", send(pg, libc::SIGKILL), Ok(()));
    let mut gs = state_of(g);
    for _ in 0..500 {
        if gs.is_some_and(|(s, _)| s == 'Z') {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        gs = state_of(g);
    }
    ck.eq("G after the SIGKILL through its pidfd: (state, parent)", gs, Some(('Z', l)));
    ck.eq("SIGKILL through L's", send(pl, libc::SIGKILL), Ok(()));
    let mut lw = wait_pidfd(pl);
    for _ in 0..500 {
        if lw != Err(libc::EAGAIN) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        lw = wait_pidfd(pl);
    }
    ck.eq("waitid through L's after it", lw, Ok((l, libc::CLD_KILLED, libc::SIGKILL)));
    cleanup(l, g);
    ck.finish()
}

/// Nothing left behind, whatever went wrong.
fn cleanup(l: i32, g: i32) {
    // SAFETY: kill and waitpid on our child's and grandchild's pids.
    unsafe {
        libc::kill(g, libc::SIGKILL);
        libc::kill(l, libc::SIGKILL);
        libc::waitpid(l, std::ptr::null_mut(), 0);
    }
}
