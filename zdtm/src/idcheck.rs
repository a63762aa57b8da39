//! A task of a test tree that reports its own ids on request: its parent,
//! process group and session (getppid, getpgid, getsid, from inside) and
//! what waitpid(-1, WNOHANG) says of its children (a leftover helper or
//! zombie shows there). Used by pgrp_helper00 and sid_helper00.

/// What a member says of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// waitpid(-1, WNOHANG): -1 with ECHILD when it has no children.
    pub wait: i32,
    pub wait_errno: i32,
}

/// A member: a pipe pair to ask it (`ask`) and hear it (`hear`).
pub struct Member {
    pub pid: i32,
    ask: i32,
    hear: i32,
}

fn pipe() -> [i32; 2] {
    let mut p = [0; 2];
    // SAFETY: pipe fills our array.
    if unsafe { libc::pipe(p.as_mut_ptr()) } != 0 {
        crate::fail(&format!("pipe: {}", crate::last_err()));
    }
    p
}

/// The pipes of a member to be forked.
pub struct Pipes {
    ask: [i32; 2],
    hear: [i32; 2],
}

impl Pipes {
    pub fn new() -> Pipes {
        Pipes { ask: pipe(), hear: pipe() }
    }

    /// In the forked member: answer requests until EOF, then exit.
    /// Byte `s`: leave our process group first (the sabotage).
    pub fn serve(self) -> ! {
        // SAFETY: closing our copies of the other ends; SIGTERM at its default.
        unsafe {
            libc::close(self.ask[1]);
            libc::close(self.hear[0]);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
        }
        loop {
            let mut b = [0u8; 1];
            // SAFETY: one byte into our buffer.
            let n = unsafe { libc::read(self.ask[0], b.as_mut_ptr().cast(), 1) };
            if n == -1 && crate::last_err().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            if n != 1 {
                // SAFETY: _exit leaves at once.
                unsafe { libc::_exit(0) };
            }
            if b[0] == b's' {
                // SAFETY: setpgid takes only integers.
                unsafe { libc::setpgid(0, 0) };
            }
            let mut st = 0;
            // SAFETY: getters take no memory; waitpid gets a valid out-pointer.
            let v = unsafe {
                let wait = libc::waitpid(-1, &mut st, libc::WNOHANG);
                let wait_errno = if wait < 0 { crate::last_err().raw_os_error().unwrap_or(0) } else { 0 };
                [libc::getppid(), libc::getpgid(0), libc::getsid(0), wait, wait_errno]
            };
            // SAFETY: 20 bytes from our array to our pipe.
            unsafe { libc::write(self.hear[1], v.as_ptr().cast(), 20) };
        }
    }

    /// In another member: close them all (its EOF must not wait for us).
    pub fn close(self) {
        for fd in self.ask.into_iter().chain(self.hear) {
            // SAFETY: closing fds we own.
            unsafe { libc::close(fd) };
        }
    }

    /// In the parent: keep our ends.
    pub fn member(self, pid: i32) -> Member {
        // SAFETY: closing the member's ends.
        unsafe {
            libc::close(self.ask[0]);
            libc::close(self.hear[1]);
        }
        Member { pid, ask: self.ask[1], hear: self.hear[0] }
    }
}

impl Default for Pipes {
    fn default() -> Self {
        Self::new()
    }
}

impl Member {
    /// Ask for its ids (`sabotage`: it leaves its group first).
    pub fn ids(&self, sabotage: bool) -> Ids {
        let b = if sabotage { b"s" } else { b"c" };
        let mut v = [0i32; 5];
        // SAFETY: one byte out; 20 bytes into our array.
        let n = unsafe {
            libc::write(self.ask, b.as_ptr().cast(), 1);
            libc::read(self.hear, v.as_mut_ptr().cast(), 20)
        };
        if n != 20 {
            crate::fail(&format!("member {}: no answer ({n})", self.pid));
        }
        Ids { ppid: v[0], pgid: v[1], sid: v[2], wait: v[3], wait_errno: v[4] }
    }

    /// End it (EOF on its pipe) and reap it.
    pub fn finish(self) -> bool {
        // SAFETY: closing our ends; waitpid gets a valid out-pointer.
        unsafe {
            libc::close(self.ask);
            libc::close(self.hear);
            let mut st = 0;
            libc::waitpid(self.pid, &mut st, 0) == self.pid && libc::WIFEXITED(st)
        }
    }
}

/// Whether a process with pid `pid` exists (not its group: the pid).
pub fn exists(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The children of `pid` (/proc/PID/task/PID/children), sorted.
pub fn children(pid: i32) -> Vec<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let mut v: Vec<i32> = s.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    v.sort_unstable();
    v
}

/// fork(), failing the test on error.
pub fn fork() -> i32 {
    // SAFETY: the test is single-threaded; children run only its code.
    let p = unsafe { libc::fork() };
    if p < 0 {
        crate::fail(&format!("fork: {}", crate::last_err()));
    }
    p
}
