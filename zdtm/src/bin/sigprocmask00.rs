//! sigprocmask00: the blocked signal mask survives, and still works after:
//! unblocking delivers, a still-blocked signal stays pending.

use std::sync::atomic::{AtomicUsize, Ordering};
use zdtm::Checks;

static GOT: AtomicUsize = AtomicUsize::new(0);

extern "C" fn handler(sig: libc::c_int) {
    GOT.fetch_add(sig as usize * 1000 + 1, Ordering::SeqCst);
}

fn mask_of(s: &libc::sigset_t) -> Vec<i32> {
    // SAFETY: sigismember on a valid set.
    (1..=64)
        .filter(|&n| unsafe { libc::sigismember(s, n) } == 1)
        .collect()
}

fn blocked() -> Vec<i32> {
    // SAFETY: sigset_t is plain data (all zeroes is valid); with a null
    // new set, sigprocmask only writes the current mask into `s`.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigprocmask(libc::SIG_BLOCK, std::ptr::null(), &mut s);
        mask_of(&s)
    }
}

fn change(how: libc::c_int, sigs: &[i32]) {
    // SAFETY: a set built with sigaddset.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        for &n in sigs {
            libc::sigaddset(&mut s, n);
        }
        libc::sigprocmask(how, &s, std::ptr::null_mut());
    }
}

fn main() {
    zdtm::test_init();
    let block = [
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGWINCH,
        libc::SIGRTMIN() + 3,
        64,
    ];
    zdtm::install_handler(libc::SIGUSR1, handler as *const () as usize, 0);
    zdtm::install_handler(libc::SIGUSR2, handler as *const () as usize, 0);
    change(libc::SIG_BLOCK, &block);
    let want = blocked();
    if want.len() != block.len() {
        zdtm::fail(&format!("blocked {want:?}, asked for {block:?}"));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        change(libc::SIG_UNBLOCK, &[libc::SIGWINCH]);
    }
    let mut c = Checks::new();
    c.eq("blocked signals", blocked(), want);
    // A blocked signal stays pending; unblocking delivers it.
    // SAFETY: raise on ourselves.
    unsafe { libc::raise(libc::SIGUSR2) };
    c.eq(
        "blocked SIGUSR2 not delivered",
        GOT.load(Ordering::SeqCst),
        0,
    );
    change(libc::SIG_UNBLOCK, &[libc::SIGUSR1]);
    // SAFETY: raise on ourselves.
    unsafe { libc::raise(libc::SIGUSR1) };
    c.eq(
        "unblocked SIGUSR1 delivered",
        GOT.load(Ordering::SeqCst),
        libc::SIGUSR1 as usize * 1000 + 1,
    );
    change(libc::SIG_UNBLOCK, &[libc::SIGUSR2]);
    c.eq(
        "SIGUSR2 delivered on unblock",
        GOT.load(Ordering::SeqCst),
        (libc::SIGUSR1 + libc::SIGUSR2) as usize * 1000 + 2,
    );
    c.finish()
}
