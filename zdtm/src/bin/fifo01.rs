//! fifo01: a FIFO whose ends are in two tasks: this task reads it
//! (non-blocking), its child writes it, and 300 bytes the child wrote wait
//! in it. After restore the queued bytes are there, and when told (over a
//! pipe) the child writes again through its end and this task reads it.

use zdtm::Checks;

const DATA: usize = 300;


fn main() {
    zdtm::test_init();
    let path = zdtm::filename().to_path_buf();
    zdtm::mkfifo_or_fail(&path, 0o600);
    let c = zdtm::cpath(&path);
    let ro = zdtm::open_or_fail(&path, libc::O_RDONLY | libc::O_NONBLOCK);
    let mut go = [0; 2];
    let mut ready = [0; 2];
    // SAFETY: pipe fills our arrays.
    if unsafe { libc::pipe(go.as_mut_ptr()) } != 0 || unsafe { libc::pipe(ready.as_mut_ptr()) } != 0 {
        zdtm::fail("pipe");
    }
    let mut data = [0u8; DATA];
    zdtm::datagen(&mut data, 11);
    // SAFETY: the child only opens, writes, waits and exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: plain syscalls in the child on its own fds.
        unsafe {
            libc::close(ro);
            libc::close(go[1]);
            libc::close(ready[0]);
            let wo = libc::open(c.as_ptr(), libc::O_WRONLY);
            let ok = wo >= 0 && libc::write(wo, data.as_ptr().cast(), DATA) == DATA as isize;
            libc::write(ready[1], [u8::from(ok)].as_ptr().cast(), 1);
            let mut b = [0u8; 1];
            while libc::read(go[0], b.as_mut_ptr().cast(), 1) < 0 {}
            let ok = libc::write(wo, b"again".as_ptr().cast(), 5) == 5;
            libc::_exit(if ok { 0 } else { 1 });
        }
    }
    // SAFETY: closing the child's ends in this task.
    unsafe {
        libc::close(go[0]);
        libc::close(ready[1]);
    }
    if zdtm::read_some(ready[0], 1) != [1] {
        zdtm::fail("the child could not write the fifo");
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        zdtm::read_some(ro, 10);
    }

    let mut ck = Checks::new();
    let got = zdtm::read_some(ro, 2 * DATA);
    ck.check(got[..] == data[..], || format!("read {} queued byte(s), want the child's {DATA}", got.len()));
    // SAFETY: telling the child to go on, then waiting for it.
    let code = unsafe {
        libc::write(go[1], b"g".as_ptr().cast(), 1);
        let mut ws = 0;
        libc::waitpid(child, &mut ws, 0);
        if libc::WIFEXITED(ws) { libc::WEXITSTATUS(ws) } else { -1 }
    };
    ck.eq("child's exit", code, 0);
    ck.eq("what the child wrote after restore", zdtm::read_some(ro, 16), b"again".to_vec());
    ck.finish()
}
