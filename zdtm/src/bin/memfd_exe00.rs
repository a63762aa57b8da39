//! memfd_exe00: a task running from a memfd (copied there and fexecve'd,
//! sealed against writing, growing and shrinking, no fd left on it: how
//! runc runs itself). After restore /proc/self/exe is that memfd again
//! (its name and seals) holding the program's bytes, and its text is
//! mapped from it.
//! Sabotage: the bytes are compared with a changed copy.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

use zdtm::Checks;

const MARK: &str = "ZDTM_MEMFD_EXE_FROM";
const NAME: &str = "zdtm memfd_exe00";
const SEALS: i32 = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Run this program again from a sealed memfd copy of it, same arguments
/// (the original's path in the environment).
fn reexec_from_memfd() -> ! {
    let exe = std::fs::read("/proc/self/exe").unwrap_or_else(|e| zdtm::fail(&format!("reading /proc/self/exe: {e}")));
    let name = CString::new(NAME).unwrap_or_else(|_| zdtm::fail("a NUL in the name"));
    // SAFETY: a valid C string.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        zdtm::skip(&format!("memfd_create: {}", zdtm::last_err()));
    }
    let mut at = 0;
    while at < exe.len() {
        // SAFETY: writing from our buffer.
        let n = unsafe { libc::write(fd, exe[at..].as_ptr().cast(), exe.len() - at) };
        if n <= 0 {
            zdtm::fail(&format!("writing the memfd: {}", zdtm::last_err()));
        }
        at += n as usize;
    }
    // SAFETY: an fcntl on our fd.
    if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, SEALS) } != 0 {
        zdtm::fail(&format!("F_ADD_SEALS: {}", zdtm::last_err()));
    }
    let path = std::fs::read_link("/proc/self/exe").unwrap_or_else(|e| zdtm::fail(&format!("readlink /proc/self/exe: {e}")));
    // SAFETY: single-threaded here (nothing started yet); setenv before exec.
    unsafe { std::env::set_var(MARK, &path) };
    let args: Vec<CString> = std::env::args_os().map(|a| CString::new(a.as_bytes()).unwrap_or_default()).collect();
    let envs: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| CString::new([k.as_bytes(), b"=", v.as_bytes()].concat()).unwrap_or_default())
        .collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = envs.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of valid C strings that outlive the call.
    unsafe { libc::fexecve(fd, argv.as_ptr(), envp.as_ptr()) };
    zdtm::skip(&format!("fexecve of a memfd: {}", zdtm::last_err()))
}

fn main() {
    let Some(orig) = std::env::var_os(MARK) else { reexec_from_memfd() };
    zdtm::test_init();
    let mut want = std::fs::read(&orig).unwrap_or_else(|e| zdtm::fail(&format!("reading {}: {e}", orig.to_string_lossy())));

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        want[100] ^= 0xff;
    }
    let mut ck = Checks::new();
    let link = std::fs::read_link("/proc/self/exe").map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
    ck.eq("exe", link, format!("/memfd:{NAME} (deleted)"));
    match std::fs::File::open("/proc/self/exe") {
        Ok(f) => {
            // SAFETY: an fcntl query on our fd.
            ck.eq("seals", unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&f), libc::F_GET_SEALS) }, SEALS);
        }
        Err(e) => ck.check(false, || format!("opening /proc/self/exe: {e}")),
    }
    let got = std::fs::read("/proc/self/exe").unwrap_or_default();
    ck.check(got == want, || format!("the executable's {} bytes differ from the program's {}", got.len(), want.len()));
    let text = main as fn() as usize;
    let shown = zdtm::maps_entry(text).unwrap_or_default();
    ck.check(shown.contains(&format!("/memfd:{NAME} (deleted)")), || format!("the text is mapped from {shown:?}"));
    ck.finish()
}
