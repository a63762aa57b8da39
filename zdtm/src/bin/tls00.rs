//! tls00: GDT TLS entries (set_thread_area) survive, per thread. The main
//! thread installs a 32-bit data segment in slot 12; a second thread
//! (cloned with the main thread's slots) installs another in slot 13 and
//! empties slot 12. After restore each thread reads its three slots with
//! get_thread_area and must find exactly what it had: the restore sets
//! every slot, empty ones included.

use std::sync::mpsc;

use zdtm::Checks;

/// struct user_desc.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct UserDesc {
    entry_number: u32,
    base_addr: u32,
    limit: u32,
    flags: u32,
}

/// seg_32bit, limit_in_pages, useable: what a 32-bit TLS segment uses.
const DATA32: u32 = 1 | (1 << 4) | (1 << 6);
/// read_exec_only, seg_not_present: an empty slot as the kernel shows it.
const EMPTY: u32 = (1 << 3) | (1 << 5);

fn desc(entry: u32, base: u32) -> UserDesc {
    UserDesc { entry_number: entry, base_addr: base, limit: 0xfffff, flags: DATA32 }
}

fn empty(entry: u32) -> UserDesc {
    UserDesc { entry_number: entry, base_addr: 0, limit: 0, flags: EMPTY }
}

/// set_thread_area / get_thread_area exist in the i386 table only:
/// `int 0x80`, whose pointer arguments are 32-bit.
const NR32_SET_THREAD_AREA: usize = 243;
const NR32_GET_THREAD_AREA: usize = 244;
const NR32_GETPID: usize = 20;

/// One i386 system call; `d` (if any) travels through a page below 4 GiB.
fn int80(nr: usize, d: Option<&mut UserDesc>) -> Result<(), std::io::Error> {
    thread_local! {
        static LOW: usize = {
            // SAFETY: a fresh anonymous page; MAP_32BIT puts it below 2 GiB.
            let p = unsafe { libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT, -1, 0) };
            assert_ne!(p, libc::MAP_FAILED, "mmap(MAP_32BIT): {}", zdtm::last_err());
            p as usize
        };
    }
    let low = LOW.with(|l| *l);
    let buf = low as *mut UserDesc;
    if let Some(d) = &d {
        // SAFETY: `low` is our own read-write page, larger than a UserDesc.
        unsafe { buf.write(**d) };
    }
    let ret: usize;
    // SAFETY: int 0x80 returns in eax and may clobber r8-r11; ebx (which
    // the compiler cannot name) is swapped in and back.
    unsafe {
        std::arch::asm!(
            "xchg {a}, rbx",
            "int 0x80",
            "xchg {a}, rbx",
            a = inout(reg) low => _,
            inlateout("rax") nr => ret,
            lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
            options(nostack),
        );
    }
    let ret = ret as u32 as i32;
    if ret < 0 {
        return Err(std::io::Error::from_raw_os_error(-ret));
    }
    if let Some(d) = d {
        // SAFETY: as above; the kernel wrote a UserDesc there.
        *d = unsafe { buf.read() };
    }
    Ok(())
}

/// Whether this kernel takes `int 0x80` (IA32 emulation): tried in a child,
/// which dies of SIGSEGV where it does not.
fn has_int80() -> bool {
    // SAFETY: the child only makes one system call and exits.
    match unsafe { libc::fork() } {
        0 => {
            let ok = int80(NR32_GETPID, None).is_ok();
            // SAFETY: plain syscall, in the child.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        pid if pid > 0 => {
            let mut st = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(pid, &mut st, 0) };
            libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0
        }
        _ => false,
    }
}

fn set(d: UserDesc) -> Result<(), std::io::Error> {
    let mut d = d;
    int80(NR32_SET_THREAD_AREA, Some(&mut d))
}

fn get(entry: u32) -> Result<UserDesc, std::io::Error> {
    let mut d = UserDesc { entry_number: entry, ..Default::default() };
    int80(NR32_GET_THREAD_AREA, Some(&mut d)).map(|_| d)
}

/// This thread's slots 12..=14 that differ from `want`.
fn check(who: &str, want: &[UserDesc; 3]) -> Vec<String> {
    let mut errs = Vec::new();
    for w in want {
        match get(w.entry_number) {
            Ok(d) if d == *w => {}
            Ok(d) => errs.push(format!("{who}: GDT TLS slot {}: got {d:?}, want {w:?}", w.entry_number)),
            Err(e) => errs.push(format!("{who}: get_thread_area({}): {e}", w.entry_number)),
        }
    }
    errs
}

fn main() {
    zdtm::test_init();
    if !has_int80() {
        zdtm::skip("this kernel has no 32-bit syscall entry (IA32 emulation): no GDT TLS entries can be set");
    }
    if let Err(e) = set(desc(12, 0x1234_5000)) {
        zdtm::fail(&format!("set_thread_area: {e}"));
    }
    let main_want = [desc(12, 0x1234_5000), empty(13), empty(14)];
    let thread_want = [empty(12), desc(13, 0x0abc_d000), empty(14)];

    let (to_thread, rx) = mpsc::channel::<bool>();
    let (tx, from_thread) = mpsc::channel::<Result<Vec<String>, String>>();
    let h = std::thread::spawn(move || {
        if let Err(e) = set(empty(12)).and_then(|_| set(thread_want[1])) {
            let _ = tx.send(Err(format!("thread: set_thread_area: {e}")));
            return;
        }
        let _ = tx.send(Ok(Vec::new()));
        let Ok(sabotage) = rx.recv() else { return };
        if sabotage {
            let _ = set(desc(13, 0x0bad_0000));
        }
        let _ = tx.send(Ok(check("thread", &thread_want)));
    });
    match from_thread.recv() {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => zdtm::fail(&e),
        Err(_) => zdtm::fail("the thread went away"),
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    let sabotage = zdtm::sabotaged();
    if sabotage {
        let _ = set(empty(12));
    }
    let mut c = Checks::new();
    for e in check("main", &main_want) {
        c.check(false, || e);
    }
    let _ = to_thread.send(sabotage);
    match from_thread.recv() {
        Ok(Ok(errs)) => errs.into_iter().for_each(|e| c.check(false, || e)),
        Ok(Err(e)) => c.check(false, || e),
        Err(_) => c.check(false, || "the thread went away".into()),
    }
    let _ = h.join();
    c.finish()
}
