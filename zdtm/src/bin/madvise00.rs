//! madvise00: madvise advice and MAP_DROPPABLE survive, each on its own
//! mapping filled with a pattern.
//!
//! After the restore each mapping must show its VmFlag in /proc/self/smaps
//! and hold its data; then a child forked for the check must see the
//! MADV_DONTFORK mapping absent, the MADV_WIPEONFORK and MAP_DROPPABLE ones
//! zeroed, and the others with their data. Advice this kernel refuses
//! (MADV_MERGEABLE without KSM, THP off, MAP_DROPPABLE before 6.11) is left
//! out with a message.

use zdtm::Checks;
use zdtm::mem::{bytes, has_vmflag, in_child, madvise, map, vmflags};

const NP: usize = 4;
/// mmap type MAP_DROPPABLE (Linux 6.11).
const MAP_DROPPABLE: libc::c_int = 0x08;

struct Area {
    name: &'static str,
    flag: &'static str,
    p: *mut u8,
    want: Vec<u8>,
    /// What a child forked after the restore sees.
    in_child: Child,
}

#[derive(Clone, Copy, PartialEq)]
enum Child {
    Same,
    Zero,
    Absent,
}

fn main() {
    zdtm::test_init();
    let ps = zdtm::page_size();
    let len = NP * ps;
    let seed = std::process::id() as u64 * 1000;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let advice: [(&str, &str, libc::c_int, Child); 8] = [
        ("MADV_DONTFORK", "dc", libc::MADV_DONTFORK, Child::Absent),
        ("MADV_WIPEONFORK", "wf", libc::MADV_WIPEONFORK, Child::Zero),
        ("MADV_HUGEPAGE", "hg", libc::MADV_HUGEPAGE, Child::Same),
        ("MADV_NOHUGEPAGE", "nh", libc::MADV_NOHUGEPAGE, Child::Same),
        ("MADV_DONTDUMP", "dd", libc::MADV_DONTDUMP, Child::Same),
        ("MADV_MERGEABLE", "mg", libc::MADV_MERGEABLE, Child::Same),
        ("MADV_SEQUENTIAL", "sr", libc::MADV_SEQUENTIAL, Child::Same),
        ("MADV_RANDOM", "rr", libc::MADV_RANDOM, Child::Same),
    ];
    let mut areas = Vec::new();
    for (i, (name, flag, adv, child)) in advice.into_iter().enumerate() {
        let p = map(name, len, rw, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        let mut want = vec![0u8; len];
        zdtm::datagen(&mut want, seed + i as u64);
        bytes(p, len).copy_from_slice(&want);
        if let Err(e) = madvise(p, len, adv) {
            zdtm::test_msg!("{name} refused here ({e}): left out");
            // SAFETY: our own mapping, no longer used.
            unsafe { libc::munmap(p.cast(), len) };
            continue;
        }
        areas.push(Area { name, flag, p, want, in_child: child });
    }
    // SAFETY: a fresh mapping placed by the kernel.
    let d = unsafe { libc::mmap(std::ptr::null_mut(), len, rw, MAP_DROPPABLE | libc::MAP_ANONYMOUS, -1, 0) };
    if d == libc::MAP_FAILED {
        zdtm::test_msg!("MAP_DROPPABLE refused here ({}): left out", zdtm::last_err());
    } else {
        let mut want = vec![0u8; len];
        zdtm::datagen(&mut want, seed + 100);
        bytes(d.cast(), len).copy_from_slice(&want);
        areas.push(Area { name: "MAP_DROPPABLE", flag: "dp", p: d.cast(), want, in_child: Child::Zero });
    }
    for a in &areas {
        if !has_vmflag(a.p, a.flag) {
            zdtm::fail(&format!("{}: no {} in VmFlags before the dump: {:?}", a.name, a.flag, vmflags(a.p as usize)));
        }
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // The advice undone: DONTFORK and WIPEONFORK back to the defaults.
        for a in &areas {
            let undo = match a.flag {
                "dc" => libc::MADV_DOFORK,
                "wf" => libc::MADV_KEEPONFORK,
                _ => continue,
            };
            let _ = madvise(a.p, len, undo);
        }
    }

    let mut ck = Checks::new();
    for a in &areas {
        let flags = vmflags(a.p as usize);
        ck.check(flags.iter().any(|f| f == a.flag), || format!("{}: no {} in VmFlags: {flags:?}", a.name, a.flag));
        ck.check(bytes(a.p, len) == a.want.as_slice(), || format!("{}: contents differ in the task", a.name));
    }
    let seen = in_child(|| {
        let mut errs = Vec::new();
        for a in &areas {
            match a.in_child {
                Child::Absent if zdtm::probe_readable(a.p as usize) => errs.push(format!("{} mapping is in a forked child", a.name)),
                Child::Absent => {}
                Child::Zero if bytes(a.p, len).iter().any(|&b| b != 0) => {
                    errs.push(format!("{} mapping is not zeroed in a forked child", a.name))
                }
                Child::Zero => {}
                Child::Same if bytes(a.p, len) != a.want.as_slice() => {
                    errs.push(format!("{}: contents differ in a forked child", a.name))
                }
                Child::Same => {}
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs.join("; ")) }
    });
    if let Err(e) = seen {
        ck.check(false, || e);
    }
    ck.finish()
}
