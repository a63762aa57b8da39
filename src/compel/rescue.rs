//! The rescue chain: what makes a seized task safe from a tracer that dies
//! at any moment (issue 17). Owns finding the gadgets in the task's code,
//! the home frame on the task's stack, the rescue page, the list of things
//! to undo (areas we mapped, fds we made), the chain of frames that undoes
//! them, a free gap for our mappings, and the fds a new socketpair will
//! get. [`super::Seized`] drives the task with it (see `mod.rs`).
//!
//! On the task's stack, below its stack pointer less the red zone (free by
//! the ABI; about what a signal delivered there would take):
//! ```text
//! sp - 128 ─┐ home frame (the seized state; pretcode = rt_sigreturn stub)
//!           │ one slot: munmap the rescue page, then home
//! ```
//! Once something is to be undone, a rescue page of our own is mapped
//! (the stack slot on the chain first) and holds the rest of the chain in
//! two areas: a chain is written into the area not in use, then made
//! current by one register write (the stack pointer of the next syscall,
//! or of the parked task), so a half-written chain is never one the task
//! can run. Every frame is loaded before its syscall runs, so the chain
//! may unmap the page it lives in: that is its last step before home.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use nix::unistd::Pid;

use crate::arch::rescue as arch;
use crate::arch::{FpuState, Regs};

/// Frames one chain can hold in the rescue page (the undo list's longest length).
pub(super) const CHAIN_CAP: usize = 6;
/// Bytes of the rescue page: two chain areas.
pub(super) const PAGE_LEN: u64 = (2 * CHAIN_CAP as u64 * arch::SLOT).div_ceil(PAGE) * PAGE;
const PAGE: u64 = 4096;
/// Lowest address we map at (above any mmap_min_addr).
const MIN_ADDR: u64 = 0x1000_0000;

/// Addresses of the two gadgets in the task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Gadgets {
    /// `syscall; ret`.
    pub syscall_ret: u64,
    /// `rt_sigreturn` (loads the frame below the stack pointer).
    pub sigreturn: u64,
}

/// Something we did to the task that a dead tracer's task undoes itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Undo {
    Close(i32),
    Munmap(u64, u64),
}

impl Undo {
    fn syscall(self) -> (i64, [u64; 6]) {
        match self {
            Undo::Close(fd) => (libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0]),
            Undo::Munmap(a, l) => (libc::SYS_munmap, [a, l, 0, 0, 0, 0]),
        }
    }
}

/// The armed state of one seized thread.
pub(super) struct Rescue {
    pub g: Gadgets,
    /// The home frame (its `pretcode`).
    pub home: u64,
    /// The stack slot below home: munmap the rescue page, then home.
    slot: u64,
    /// The rescue page, once mapped.
    page: Option<u64>,
    active: usize,
    undo: Vec<Undo>,
    /// Where the current chain starts (home when nothing is to undo).
    pub head: u64,
}

/// One line of /proc/PID/maps.
struct Vma {
    start: u64,
    end: u64,
    perms: String,
    offset: u64,
    inode: u64,
    dev: String,
    name: String,
}

fn vmas(pid: Pid) -> Option<Vec<Vma>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    text.lines()
        .map(|l| {
            let mut f = l.split_whitespace();
            let (s, e) = f.next()?.split_once('-')?;
            let perms = f.next()?.to_string();
            let offset = u64::from_str_radix(f.next()?, 16).ok()?;
            let dev = f.next()?.to_string();
            let inode = f.next()?.parse().ok()?;
            let name = f.collect::<Vec<_>>().join(" ");
            Some(Vma { start: u64::from_str_radix(s, 16).ok()?, end: u64::from_str_radix(e, 16).ok()?, perms, offset, inode, dev, name })
        })
        .collect()
}

/// Offsets of the first `syscall; ret` and the first `rt_sigreturn` stub
/// in `text`.
fn scan(text: &[u8]) -> (Option<u64>, Option<u64>) {
    let find = |p: &[u8]| crate::sys::mm::find_bytes(text, p).map(|o| o as u64);
    (find(arch::SYSCALL_RET), arch::SIGRETURN.iter().filter_map(|p| find(p)).min())
}

/// Gadget offsets found in a file mapping before, by (dev, inode, file
/// offset, length): tasks of one tree share their libc.
type Found = (Option<u64>, Option<u64>);
/// (device, inode, file offset, length) of a mapping.
type MapKey = (String, u64, u64, u64);
static CACHE: Mutex<Option<HashMap<MapKey, Found>>> = Mutex::new(None);

/// Look for the gadgets in the task's file-backed, read-only executable
/// mappings (their bytes cannot change under us); each address found is
/// checked in the task itself.
fn find_gadgets(pid: Pid, maps: &[Vma]) -> Option<Gadgets> {
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let at = |addr: u64, pat: &[u8]| {
        let mut b = vec![0u8; pat.len()];
        mem.read_exact_at(&mut b, addr).is_ok() && b == pat
    };
    let (mut sc, mut sr): (Option<u64>, Option<u64>) = (None, None);
    for v in maps.iter().filter(|v| v.perms.starts_with("r-x") && v.inode != 0) {
        let key = (v.dev.clone(), v.inode, v.offset, v.end - v.start);
        let cached = CACHE.lock().ok().and_then(|c| c.as_ref().and_then(|m| m.get(&key).copied()));
        let found = match cached {
            Some(f) => f,
            None => {
                let mut text = vec![0u8; (v.end - v.start) as usize];
                if mem.read_exact_at(&mut text, v.start).is_err() {
                    continue;
                }
                let (s, r) = scan(&text);
                if let Ok(mut c) = CACHE.lock() {
                    c.get_or_insert_with(HashMap::new).insert(key, (s, r));
                }
                (s, r)
            }
        };
        if sc.is_none() {
            sc = found.0.map(|o| v.start + o).filter(|&a| at(a, arch::SYSCALL_RET));
        }
        if sr.is_none() {
            sr = found.1.map(|o| v.start + o).filter(|&a| arch::SIGRETURN.iter().any(|p| at(a, p)));
        }
        if let (Some(syscall_ret), Some(sigreturn)) = (sc, sr) {
            return Some(Gadgets { syscall_ret, sigreturn });
        }
    }
    None
}

fn write_mem(pid: Pid, addr: u64, data: &[u8]) -> Result<(), String> {
    use nix::sys::uio::{process_vm_writev, RemoteIoVec};
    let n = process_vm_writev(pid, &[std::io::IoSlice::new(data)], &[RemoteIoVec { base: addr as usize, len: data.len() }])
        .map_err(|e| format!("writing {} bytes at {addr:#x}: {e}", data.len()))?;
    if n != data.len() {
        return Err(format!("writing {} bytes at {addr:#x}: short write", data.len()));
    }
    Ok(())
}

impl Rescue {
    /// Find the gadgets and write the home frame for a thread seized with
    /// `regs`, `fpu` and `sigmask`. Err: why this thread cannot have it.
    pub fn arm(pid: Pid, regs: &Regs, fpu: &FpuState, sigmask: u64) -> Result<Rescue, String> {
        let maps = vmas(pid).ok_or("cannot read its maps")?;
        let g = find_gadgets(pid, &maps).ok_or("no `syscall; ret` and rt_sigreturn stub in its code")?;
        let sp = regs.sp();
        let home = (sp - arch::RED_ZONE - arch::home_size(fpu)) & !63;
        let slot = home - arch::SLOT;
        // All of it inside the mapping the stack pointer is in.
        let vma = maps.iter().find(|v| v.start < sp && sp <= v.end).ok_or_else(|| format!("its stack pointer {sp:#x} is in no mapping"))?;
        if slot < vma.start || !vma.perms.starts_with("rw") {
            return Err(format!("no room below its stack pointer {sp:#x} in {:#x}-{:#x}", vma.start, vma.end));
        }
        write_mem(pid, home, &arch::home_frame(regs, fpu, sigmask, home, g.sigreturn))?;
        Ok(Rescue { g, home, slot, page: None, active: 0, undo: Vec::new(), head: home })
    }

    /// Whether anything is to be undone, the rescue page included (the
    /// task then parks in the chain).
    pub fn pending(&self) -> bool {
        self.head != self.home
    }

    /// The rescue page, if mapped.
    pub fn page(&self) -> Option<u64> {
        self.page
    }

    /// Before mapping the rescue page at `addr`: its undo frame goes into
    /// the stack slot and the chain starts there (an munmap of a free gap
    /// does nothing if the mmap never ran).
    pub fn page_prepare(&mut self, pid: Pid, like: &Regs, addr: u64) -> Result<(), String> {
        let (nr, args) = Undo::Munmap(addr, PAGE_LEN).syscall();
        write_mem(pid, self.slot, &arch::undo_frame(like, self.g.syscall_ret, nr, args, self.home + arch::ENTRY_OFFSET, self.g.sigreturn))?;
        self.head = self.slot + arch::ENTRY_OFFSET;
        Ok(())
    }

    /// The rescue page is mapped at `addr` (Some) or is gone (None; the
    /// chain is home again).
    pub fn page_set(&mut self, addr: Option<u64>) {
        self.page = addr;
        if addr.is_none() {
            self.head = self.home;
        }
    }

    /// What is to be undone, oldest first.
    pub fn undo_list(&self) -> &[Undo] {
        &self.undo
    }

    /// Add `u` to the list and write the new chain (current from the next
    /// register write).
    pub fn push(&mut self, pid: Pid, like: &Regs, u: Undo) -> Result<(), String> {
        if self.undo.len() == CHAIN_CAP {
            return Err(format!("more than {CHAIN_CAP} things to undo"));
        }
        self.undo.push(u);
        self.rewrite(pid, like)
    }

    /// Take `u` off the list (done) and write the new chain.
    pub fn remove(&mut self, pid: Pid, like: &Regs, u: Undo) -> Result<(), String> {
        self.undo.retain(|x| *x != u);
        self.rewrite(pid, like)
    }

    /// Replace `old` by `new` in the list (a guess that proved wrong).
    pub fn replace(&mut self, pid: Pid, like: &Regs, old: Undo, new: Undo) -> Result<(), String> {
        for x in self.undo.iter_mut().filter(|x| **x == old) {
            *x = new;
        }
        self.rewrite(pid, like)
    }

    /// The chain for the current list, newest undo first, into the area
    /// of the rescue page not in use, then the stack slot (unmap the page)
    /// and home; `head` then points at it.
    fn rewrite(&mut self, pid: Pid, like: &Regs) -> Result<(), String> {
        let Some(page) = self.page else { return Err("no rescue page".into()) };
        if self.undo.is_empty() {
            self.head = self.slot + arch::ENTRY_OFFSET;
            return Ok(());
        }
        let spare = 1 - self.active;
        let base = page + spare as u64 * CHAIN_CAP as u64 * arch::SLOT;
        let n = self.undo.len();
        let mut bytes = vec![0u8; n * arch::SLOT as usize];
        for (i, u) in self.undo.iter().rev().enumerate() {
            let next = if i + 1 == n { self.slot } else { base + (i as u64 + 1) * arch::SLOT };
            let (nr, args) = u.syscall();
            let f = arch::undo_frame(like, self.g.syscall_ret, nr, args, next + arch::ENTRY_OFFSET, self.g.sigreturn);
            bytes[i * arch::SLOT as usize..][..f.len()].copy_from_slice(&f);
        }
        write_mem(pid, base, &bytes)?;
        self.active = spare;
        self.head = base + arch::ENTRY_OFFSET;
        Ok(())
    }
}

/// A free, page-aligned address for `len` bytes in the task, a page clear
/// of its neighbours: the highest gap below the stack and the vDSO, not
/// the one the stack grows into. None if there is no such gap.
pub(super) fn free_gap(pid: Pid, len: u64) -> Option<u64> {
    let maps = vmas(pid)?;
    let special = |v: &Vma| matches!(v.name.as_str(), "[stack]" | "[vvar]" | "[vdso]" | "[vvar_vclock]");
    let ceiling = maps.iter().filter(|v| special(v)).map(|v| v.start).min().unwrap_or(0x7fff_ffff_f000);
    let mut best = None;
    let mut prev_end = MIN_ADDR;
    for v in maps.iter().chain(std::iter::once(&Vma {
        start: ceiling,
        end: ceiling,
        perms: String::new(),
        offset: 0,
        inode: 0,
        dev: String::new(),
        name: "[stack]".into(),
    })) {
        if v.start > ceiling {
            break;
        }
        let lo = prev_end.max(MIN_ADDR);
        if v.start >= lo + len + 2 * PAGE && v.name != "[stack]" {
            best = Some(v.start - PAGE - len);
        }
        prev_end = prev_end.max(v.end);
    }
    best
}

/// The two lowest fd numbers free in the task's table: what a socketpair
/// made now gets (the task is stopped; nothing else opens fds in it).
pub(super) fn next_fds(pid: Pid) -> Option<(i32, i32)> {
    let mut used: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    used.sort_unstable();
    let mut free = (0..).filter(|n| used.binary_search(n).is_err());
    Some((free.next()?, free.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_for_both_gadgets() {
        assert_eq!(scan(&[1, 0x0f, 0x05, 0xc3]), (Some(1), None));
        assert_eq!(scan(&[0x0f, 0x05, 0xc2]), (None, None));
        // Across word boundaries, at the very end, both stub forms.
        let mut t = vec![0x05u8; 40];
        t.extend_from_slice(&[0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x0f, 0x05, 0xc3]);
        assert_eq!(scan(&t), (Some(49), Some(40)));
        assert_eq!(scan(&[0x90, 0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05]), (None, Some(1)));
        for len in 0..40 {
            let h: Vec<u8> = (0..len).map(|i| [0x0f, 0x05, 0xc3, 0x48][(i * 7 + len) % 4]).collect();
            assert_eq!(scan(&h).0, h.windows(3).position(|w| w == arch::SYSCALL_RET).map(|o| o as u64), "{h:?}");
        }
    }

    #[test]
    fn a_gap_and_fds_of_our_own_process() {
        let me = Pid::this();
        let a = free_gap(me, 0x40000).expect("a gap in our address space");
        assert_eq!(a % PAGE, 0);
        let maps = vmas(me).unwrap();
        assert!(maps.iter().all(|v| v.end + PAGE <= a || v.start >= a + 0x40000 + PAGE), "{a:#x} overlaps or touches a mapping");
        let (x, y) = next_fds(me).unwrap();
        assert!(x < y);
    }
}
