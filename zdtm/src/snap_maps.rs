//! The memory part of a task snapshot: its mappings (range, perms, file
//! offset and identity) under `maps`, and each mapping's VmFlags (smaps)
//! under its own `vmflags START-END` key, so a lost flag is named by VMA.

use std::fmt::Write as _;

use super::snapshot::{Snapshot, rd};

/// VmFlags left out, each for a reason:
/// - `sd` soft-dirty: set by any write, cleared by pre-dump's tracking;
/// - `um`, `uw`, `ui`: userfaultfd registration, which a lazy restore adds
///   while it runs;
/// - `ac` (VM_ACCOUNT, commit-charge accounting, invisible to the program):
///   CRIU 4.2 maps private file mappings writable before it fills them, so
///   after its restore the kernel accounts them.
pub const VOLATILE_VMFLAGS: &[(&str, &str)] = &[
    ("sd", "soft-dirty: set by writes, cleared by pre-dump's tracking"),
    ("um", "userfaultfd missing-page registration (lazy restore)"),
    ("uw", "userfaultfd write-protect registration (lazy restore)"),
    ("ui", "userfaultfd minor-fault registration (lazy restore)"),
    ("ac", "VM_ACCOUNT: CRIU 4.2 maps private file VMAs writable first; invisible to the program"),
];

/// CRIU 4.2 restores shared anonymous memory from a memfd: /proc/PID/maps
/// then says "/memfd:/dev/zero (deleted)" (its own dump, which on this
/// kernel records such memory as a memfd named "/dev/zero") or "/memfd:
/// (deleted)" (an image's anonymous shared VMA) where the kernel said
/// "/dev/zero (deleted)"; shared anonymous hugetlb memory likewise, from a
/// hugetlb memfd named "/anon_hugepage". All the same memory to the program.
const SHMEM_PATHS: &[(&str, &str)] = &[
    ("/memfd:/dev/zero (deleted)", "/dev/zero (deleted)"),
    ("/memfd: (deleted)", "/dev/zero (deleted)"),
    ("/memfd:/anon_hugepage (deleted)", "/anon_hugepage (deleted)"),
];

struct Vma {
    start: u64,
    end: u64,
    perms: String,
    offset: Option<u64>,
    id: String,
    path: String,
    flags: String,
}

/// Mappings with perms, file offsets, file identity and VmFlags; adjacent
/// entries that differ only in how the kernel split them are merged, as
/// CRIU's zdtm does.
pub fn maps_state(pid: i32, s: &mut Snapshot) -> Result<(), String> {
    let smaps = rd(&format!("/proc/{pid}/smaps"))?;
    let mut vmas: Vec<Vma> = Vec::new();
    for line in smaps.lines() {
        if let Some(rest) = line.strip_prefix("VmFlags:") {
            if let Some(v) = vmas.last_mut() {
                let mut f: Vec<&str> = rest
                    .split_whitespace()
                    .filter(|f| !VOLATILE_VMFLAGS.iter().any(|(v, _)| v == f))
                    .collect();
                f.sort_unstable();
                v.flags = f.join(" ");
            }
            continue;
        }
        let mut it = line.splitn(6, ' ');
        let (Some(range), Some(perms), Some(off), Some(dev), Some(ino)) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        if perms.len() != 4 {
            continue;
        }
        let mut path = it.next().unwrap_or("").trim_start().to_string();
        if let Some((_, same)) = SHMEM_PATHS.iter().find(|(alias, _)| path == *alias) {
            path = same.to_string();
        }
        // A packet ring's socket is a new one after a restore (the fds'
        // compare numbers sockets; the program checks its ring).
        if path.starts_with("socket:[") {
            path = "socket:[]".into();
        }
        // An AIO ring's inode is its context's: a restore makes a new one
        // (the program knows the context by its address, which stays).
        let shmem = path == "/[aio] (deleted)"
            || path.starts_with("/dev/zero")
            || path.starts_with("/anon_hugepage")
            || path.starts_with("/SYSV")
            || path.starts_with("/memfd:");
        let file = path.starts_with('/') && ino != "0";
        let offset = u64::from_str_radix(off, 16).ok().filter(|_| file);
        let id = if file && !shmem {
            format!("{dev}:{ino}")
        } else {
            "-".into()
        };
        vmas.push(Vma {
            start,
            end,
            perms: perms.into(),
            offset,
            id,
            path,
            flags: String::new(),
        });
    }
    let mut merged: Vec<Vma> = Vec::new();
    for v in vmas {
        if let Some(p) = merged.last_mut() {
            let contiguous = match (p.offset, v.offset) {
                (Some(po), Some(vo)) => po + (p.end - p.start) == vo,
                (None, None) => true,
                _ => false,
            };
            if p.end == v.start
                && p.perms == v.perms
                && p.id == v.id
                && p.path == v.path
                && p.flags == v.flags
                && contiguous
            {
                p.end = v.end;
                continue;
            }
        }
        merged.push(v);
    }
    let mut out = String::new();
    for v in merged {
        let off = v
            .offset
            .map(|o| format!("{o:x}"))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(out, "{:x}-{:x} {} {off} {} {}", v.start, v.end, v.perms, v.id, v.path);
        s.insert(format!("vmflags {:x}-{:x}", v.start, v.end), v.flags);
    }
    s.insert("maps".into(), out);
    Ok(())
}
