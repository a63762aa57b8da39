//! grow_stack: the main thread's stack, grown by deep recursion before the
//! dump (each frame holds a pattern), is intact after: the test waits at
//! the bottom of the recursion and checks every frame on the way back up.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use zdtm::Checks;

const DEPTH: usize = 1600;
const FRAME: usize = 2048;
/// Below this the stack must reach (about 3 MiB of frames).
const MIN_GROWTH: usize = 3 << 20;

static SAB_FRAME: AtomicUsize = AtomicUsize::new(0);
static BAD_FRAMES: AtomicUsize = AtomicUsize::new(0);
static FIRST_BAD: AtomicUsize = AtomicUsize::new(usize::MAX);

fn stack_vma() -> Option<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let l = maps.lines().find(|l| l.ends_with("[stack]"))?;
    let r = l.split_whitespace().next()?;
    let (a, b) = r.split_once('-')?;
    Some((
        usize::from_str_radix(a, 16).ok()?,
        usize::from_str_radix(b, 16).ok()?,
    ))
}

#[inline(never)]
fn recurse(depth: usize, seed: u64, bottom: &mut dyn FnMut(usize)) {
    let mut buf = [0u8; FRAME];
    zdtm::datagen(&mut buf, seed + depth as u64);
    black_box(&mut buf);
    if depth == 10 {
        SAB_FRAME.store(buf.as_ptr() as usize + 7, Ordering::SeqCst);
    }
    if depth == DEPTH {
        bottom(buf.as_ptr() as usize);
    } else {
        recurse(depth + 1, seed, bottom);
    }
    let buf = black_box(&buf);
    if zdtm::datachk(buf, seed + depth as u64).is_some() {
        BAD_FRAMES.fetch_add(1, Ordering::SeqCst);
        FIRST_BAD.fetch_min(depth, Ordering::SeqCst);
    }
}

fn main() {
    zdtm::test_init();
    let seed = std::process::id() as u64 * 31;
    let (_, top) = stack_vma().unwrap_or_else(|| zdtm::fail("no [stack] in /proc/self/maps"));
    let mut c = Checks::new();
    let mut vma_before = None;
    recurse(0, seed, &mut |deepest| {
        let Some(v) = stack_vma() else {
            zdtm::fail("no [stack] at the bottom")
        };
        if top - deepest < MIN_GROWTH || v.0 > deepest {
            zdtm::fail(&format!(
                "stack did not grow as planned: {:#x} bytes used, vma {v:x?}",
                top - deepest
            ));
        }
        vma_before = Some(v);
        zdtm::test_daemon();
        zdtm::test_waitsig();
        if zdtm::sabotaged() {
            // SAFETY: a byte inside the frame buffer of depth 10, still live.
            unsafe { *(SAB_FRAME.load(Ordering::SeqCst) as *mut u8) ^= 1 };
        }
        // The top must not move; the bottom may only have grown further.
        let after = stack_vma();
        c.check(
            after.is_some_and(|a| Some(a.1) == vma_before.map(|b| b.1) && a.0 <= deepest),
            || {
                format!(
                    "[stack] vma was {vma_before:x?}, now {after:x?} (deepest frame {deepest:#x})"
                )
            },
        );
    });
    let bad = BAD_FRAMES.load(Ordering::SeqCst);
    c.check(bad == 0, || {
        format!(
            "{bad} stack frames corrupted, the shallowest at depth {}",
            FIRST_BAD.load(Ordering::SeqCst)
        )
    });
    c.finish()
}
