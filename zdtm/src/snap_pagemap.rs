//! COW sharing between the tasks of a tree: for each pair of processes,
//! the anonymous pages both map at the same address with the same frame
//! (what fork left shared and neither wrote since), read from
//! /proc/PID/pagemap. A restore must give the same sharing back: memory a
//! tree shared must not come back as private copies. Frame numbers need
//! root; without it the key says so (the same before and after).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;

use super::snapshot::{Snapshot, rd};

const PAGE: u64 = 4096;
const PRESENT: u64 = 1 << 63;
/// File page or shared anonymous (shmem): not COW-shared memory.
const FILE_OR_SHARED: u64 = 1 << 61;
/// Mapped by this task only: can't be shared with another.
const EXCLUSIVE: u64 = 1 << 56;
const PFN_MASK: u64 = (1 << 55) - 1;
/// /proc/kpageflags bits of frames that are shared without fork's COW:
/// the (huge) zero page, which a restore leaves unmapped, and KSM pages.
const KPF_KSM: u64 = 1 << 21;
const KPF_ZERO_PAGE: u64 = 1 << 24;

/// The frames of `pid`'s private anonymous pages that are not exclusive
/// to it: address -> PFN.
fn anon_frames(pid: i32) -> Result<HashMap<u64, u64>, String> {
    let maps = rd(&format!("/proc/{pid}/maps"))?;
    let pm = File::open(format!("/proc/{pid}/pagemap")).map_err(|e| format!("/proc/{pid}/pagemap: {e}"))?;
    let mut out = HashMap::new();
    for line in maps.lines() {
        if line.ends_with("[vsyscall]") {
            continue;
        }
        let Some((a, b)) = line.split_whitespace().next().and_then(|r| r.split_once('-')) else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        let mut addr = start;
        while addr < end {
            let n = ((end - addr) / PAGE).min(1 << 14) as usize;
            let mut buf = vec![0u8; n * 8];
            let got = pm.read_at(&mut buf, addr / PAGE * 8).unwrap_or(0) / 8;
            for (i, e) in buf.chunks_exact(8).take(got).enumerate() {
                let e = u64::from_le_bytes(e.try_into().unwrap_or_default());
                if e & PRESENT != 0 && e & (FILE_OR_SHARED | EXCLUSIVE) == 0 && e & PFN_MASK != 0 {
                    out.insert(addr + i as u64 * PAGE, e & PFN_MASK);
                }
            }
            if got < n {
                break;
            }
            addr += n as u64 * PAGE;
        }
    }
    Ok(out)
}

/// Whether the frame is one whose sharing a fork did not make.
fn not_cow(kpf: &File, pfn: u64) -> bool {
    let mut b = [0u8; 8];
    kpf.read_exact_at(&mut b, pfn * 8)
        .map(|_| u64::from_le_bytes(b) & (KPF_KSM | KPF_ZERO_PAGE) != 0)
        .unwrap_or(false)
}

/// The pages a `cow A~B` value's ranges cover.
fn pages(v: &str) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for l in v.lines() {
        let Some((a, b)) = l.split_whitespace().next().and_then(|r| r.split_once('-')) else { continue };
        let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else { continue };
        out.extend((a..b).step_by(PAGE as usize));
    }
    out
}

fn ranges(pages: impl IntoIterator<Item = u64>) -> String {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for addr in pages {
        match ranges.last_mut() {
            Some(r) if r.1 == addr => r.1 += PAGE,
            _ => ranges.push((addr, addr + PAGE)),
        }
    }
    ranges
        .iter()
        .map(|(x, y)| format!("{x:x}-{y:x} ({} pages)\n", (y - x) / PAGE))
        .collect()
}

/// The sharing a `cow A~B` value had before that it lacks after (None:
/// none lost). Sharing gained is no loss: CRIU 4.2's restore keeps a
/// child's page shared with its parent's whenever their contents are the
/// same, which the program can't tell from COW.
pub fn lost(before: Option<&String>, after: Option<&String>) -> Option<String> {
    let (b, a) = (pages(before.map_or("", |s| s)), pages(after.map_or("", |s| s)));
    let lost: Vec<u64> = b.difference(&a).copied().collect();
    (lost.len() > RESUME_WRITES).then(|| ranges(lost))
}

/// Pages a restored task writes just by coming back to life, before the
/// compare runs: the stack below its stack pointer (a restarted or
/// interrupted syscall's return path), its TLS (errno; rseq, whose cpu id
/// the kernel writes once the restore registers it), a page of libc and
/// heap data. A few such pages per pair of tasks stop being shared, with
/// CRIU 4.2's restore as with ours; more than this is lost sharing.
const RESUME_WRITES: usize = 8;

/// `cow A~B` keys: the address ranges (and page counts) where processes A
/// and B map the same anonymous frame.
pub fn sharing_state(pids: &[i32], s: &mut Snapshot) {
    if pids.len() < 2 {
        return;
    }
    // SAFETY: geteuid takes no arguments and touches no memory of ours.
    if unsafe { libc::geteuid() } != 0 {
        s.insert("cow".into(), "not compared: frame numbers need root".into());
        return;
    }
    let kpf = File::open("/proc/kpageflags");
    let mut frames: BTreeMap<i32, HashMap<u64, u64>> = BTreeMap::new();
    for &p in pids {
        match anon_frames(p) {
            Ok(f) => {
                frames.insert(p, f);
            }
            Err(e) => {
                s.insert(format!("cow {p}"), e);
            }
        }
    }
    let list: Vec<(&i32, &HashMap<u64, u64>)> = frames.iter().collect();
    for (i, (a, fa)) in list.iter().enumerate() {
        for (b, fb) in &list[i + 1..] {
            let mut shared: Vec<u64> = fa
                .iter()
                .filter(|(addr, pfn)| fb.get(addr) == Some(pfn))
                .filter(|(_, pfn)| !kpf.as_ref().is_ok_and(|k| not_cow(k, **pfn)))
                .map(|(addr, _)| *addr)
                .collect();
            if shared.is_empty() {
                continue;
            }
            shared.sort_unstable();
            s.insert(format!("cow {a}~{b}"), ranges(shared));
        }
    }
}

/// Self-test (`--state-diff`): break the COW sharing of one page the
/// snapshot `before` shows two processes sharing, by writing its own first
/// byte back into the second one through /proc/PID/mem (a forced write
/// copies the page; its contents stay the same). Returns what it did.
pub fn break_sharing(before: &Snapshot) -> Vec<String> {
    let Some((k, v)) = before.iter().find(|(k, _)| k.starts_with("cow ") && k.contains('~')) else {
        return Vec::new();
    };
    let Some(pid) = k.rsplit_once('~').map(|(_, b)| b.to_string()) else {
        return Vec::new();
    };
    // More pages than a resume writes, so the compare must report them.
    let addrs: Vec<u64> = pages(v).into_iter().take(RESUME_WRITES + 1).collect();
    let path = format!("/proc/{pid}/mem");
    let res = std::fs::OpenOptions::new().read(true).write(true).open(&path).and_then(|f| {
        for &addr in &addrs {
            let mut b = [0u8; 1];
            f.read_exact_at(&mut b, addr)?;
            f.write_all_at(&b, addr)?;
        }
        Ok(())
    });
    match res {
        Ok(()) => vec![format!("{path}: {} shared pages from {:#x} copied (a byte of each written back)", addrs.len(), addrs[0])],
        Err(e) => vec![format!("{path}: {e}")],
    }
}
