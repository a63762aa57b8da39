//! VMAs: from /proc/PID/smaps to the vma_entry records of mm-PID.img, with
//! CRIU's status bits, mmap flags, madvise bits and file ids; the special
//! areas ([vdso], [vvar] + [vvar_vclock], [vsyscall], [heap], packet
//! rings: `packet_ring`) marked as CRIU marks them; what we cannot dump yet refused with the VMA named.

use std::fs::File;
use std::os::unix::fs::MetadataExt;

use anyhow::{bail, Context, Result};

use crate::files::FileTable;
use crate::images::pb::VmaEntry;
use crate::proc::maps::MapEntry;

/// vma_entry.status bits (CRIU's VMA_* values).
pub mod status {
    pub const AREA_REGULAR: u32 = 1 << 0;
    pub const AREA_STACK: u32 = 1 << 1;
    pub const AREA_VSYSCALL: u32 = 1 << 2;
    pub const AREA_VDSO: u32 = 1 << 3;
    pub const AREA_HEAP: u32 = 1 << 5;
    pub const FILE_PRIVATE: u32 = 1 << 6;
    pub const FILE_SHARED: u32 = 1 << 7;
    pub const ANON_SHARED: u32 = 1 << 8;
    pub const ANON_PRIVATE: u32 = 1 << 9;
    pub const AREA_SYSVIPC: u32 = 1 << 10;
    pub const AREA_SOCKET: u32 = 1 << 11;
    pub const AREA_VVAR: u32 = 1 << 12;
    pub const AREA_AIORING: u32 = 1 << 13;
    pub const AREA_MEMFD: u32 = 1 << 14;
    /// Not a mapping: a guard region (MADV_GUARD_INSTALL) inside one, listed
    /// after every VMA of the mm image.
    pub const AREA_GUARD: u32 = 1 << 16;
    pub const AREA_UPROBES: u32 = 1 << 17;
    pub const UNSUPP: u32 = 1 << 31;
}

/// mmap type MAP_DROPPABLE (Linux 6.11): CRIU 4.2 records a droppable
/// area with this in place of MAP_PRIVATE (VmFlag `dp`).
pub const MAP_DROPPABLE: u32 = 0x08;

/// VmFlags that become madvise bits (1 << MADV_*).
const MADV_FLAGS: &[(&str, u32)] = &[
    ("sr", libc::MADV_SEQUENTIAL as u32),
    ("rr", libc::MADV_RANDOM as u32),
    ("dc", libc::MADV_DONTFORK as u32),
    ("dd", libc::MADV_DONTDUMP as u32),
    ("mg", libc::MADV_MERGEABLE as u32),
    ("hg", libc::MADV_HUGEPAGE as u32),
    ("nh", libc::MADV_NOHUGEPAGE as u32),
    ("wf", libc::MADV_WIPEONFORK as u32),
];

/// One VMA of the dump: its record and what the memory dump needs.
#[derive(Clone, Debug)]
pub struct Vma {
    pub entry: VmaEntry,
    /// How the kernel showed it (the first of merged areas).
    pub map: MapEntry,
}

impl Vma {
    pub fn is(&self, bit: u32) -> bool {
        self.entry.status & bit != 0
    }

    /// Whether the memory dump stores this VMA's private pages.
    pub fn dumps_private_pages(&self) -> bool {
        (self.is(status::AREA_REGULAR) && (self.is(status::ANON_PRIVATE) || self.is(status::FILE_PRIVATE)) && !self.is(status::AREA_VVAR))
            || self.is(status::AREA_AIORING)
    }
}

/// The PROT_* bits of a mapping as /proc/PID/maps shows them.
pub(crate) fn prot(m: &MapEntry) -> u32 {
    let mut p = 0;
    if m.read {
        p |= libc::PROT_READ as u32;
    }
    if m.write {
        p |= libc::PROT_WRITE as u32;
    }
    if m.exec {
        p |= libc::PROT_EXEC as u32;
    }
    p
}

fn madv(m: &MapEntry) -> u64 {
    MADV_FLAGS.iter().filter(|(f, _)| m.has_flag(f)).fold(0u64, |a, (_, bit)| a | (1u64 << bit))
}

/// Collect the VMAs of `pid`, recording mapped files in `files`.
/// `allow_uprobes` is `--allow-uprobes`.
pub fn collect(pid: i32, maps: &[MapEntry], files: &mut FileTable, allow_uprobes: bool) -> Result<Vec<Vma>> {
    let mut out: Vec<Vma> = Vec::with_capacity(maps.len());
    // Shared anonymous memory that is also mapped privately (through
    // /proc/PID/map_files): recorded, every mapping of it, as CRIU 4.2
    // records it, a memfd named "/dev/zero", so that the restore maps
    // the private view from the same object as the shared ones.
    // (A task before this one may have recorded the object so already.)
    let mut private_shm: Vec<u64> = maps.iter().filter(|m| !m.shared && is_anon_shmem(m)).map(|m| m.inode).collect();
    private_shm.extend(files.memfds.inodes.iter().filter(|i| i.name == "/dev/zero").map(|i| u64::from(i.shmid)));
    for m in maps {
        let what = || format!("VMA {:#x}-{:#x} {} of task {pid}", m.start, m.end, m.name);
        let mut e = VmaEntry {
            start: m.start,
            end: m.end,
            pgoff: 0,
            shmid: 0,
            prot: prot(m),
            flags: 0,
            status: 0,
            fd: -1,
            madv: None,
            fdflags: None,
        };
        let mv = madv(m);
        if mv != 0 {
            e.madv = Some(mv);
        }
        if m.has_flag("gd") {
            e.flags |= libc::MAP_GROWSDOWN as u32;
        }
        if m.has_flag("nr") {
            e.flags |= libc::MAP_NORESERVE as u32;
        }
        if m.has_flag("lo") {
            if m.has_flag("lf") {
                // The image has only MAP_LOCKED: it would come back locked
                // with every page populated.
                bail!("{}: memory locked on fault (mlock2 MLOCK_ONFAULT) is not supported", what());
            }
            e.flags |= libc::MAP_LOCKED as u32;
        }
        let special = m.name.starts_with('[') && m.name.ends_with(']');
        if !special && (m.has_flag("io") || m.has_flag("pf")) {
            bail!("{}: I/O (device) mappings can't be dumped", what());
        }
        match m.name.as_str() {
            "[vsyscall]" => {
                e.flags |= (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u32;
                e.status = status::AREA_VSYSCALL | status::ANON_PRIVATE;
            }
            "[vdso]" => {
                e.flags |= (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u32;
                e.status = status::AREA_REGULAR | status::AREA_VDSO | status::ANON_PRIVATE;
            }
            "[vvar]" | "[vvar_vclock]" => {
                // CRIU records this kernel's [vvar] + [vvar_vclock] as one area.
                if m.name == "[vvar_vclock]"
                    && let Some(prev) = out.last_mut().filter(|p| p.is(status::AREA_VVAR) && p.entry.end == m.start) {
                        prev.entry.end = m.end;
                        continue;
                    }
                e.flags |= (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u32;
                e.status = status::AREA_REGULAR | status::ANON_PRIVATE | status::AREA_VVAR;
            }
            "[uprobes]" => {
                if !allow_uprobes {
                    bail!("{}: the task has a uprobes VMA; consider using --allow-uprobes", what());
                }
                continue;
            }
            // An io_setup ring (a shared mapping of the aio pseudo-filesystem).
            _ if super::aio::is_ring(m) => super::aio::record_vma(m, &mut e),
            _ if m.has_flag("ht") => {
                // hugetlb, as CRIU 4.2 records it: the page size in the
                // flags; a memfd, or shared anonymous memory as a memfd
                // ("/anon_hugepage") of that page size; private anonymous
                // memory as such.
                let path = format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end);
                let f = File::open(&path).with_context(|| format!("{}: can't open {path}", what()))?;
                let size_bits = super::hugetlb::size_bits(&f).with_context(what)?;
                let anon = m.name.starts_with(super::hugetlb::ANON_NAME);
                if m.name.starts_with("/SYSV") {
                    bail!("{}: SysV shared memory is not supported yet", what());
                }
                if !super::memfd::is_memfd_map(m) && !anon {
                    bail!("{}: mappings of hugetlbfs files are not supported yet", what());
                }
                e.flags |= libc::MAP_HUGETLB as u32 | size_bits;
                if anon && !m.shared {
                    // Private anonymous: its pages go with the task's.
                    e.flags |= (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u32;
                    e.status = status::AREA_REGULAR | status::ANON_PRIVATE;
                } else {
                    let (id, fdflags) = super::memfd::record_mapping(pid, m, files)?;
                    e.shmid = u64::from(id);
                    e.pgoff = m.offset;
                    e.fdflags = Some(fdflags);
                    let (flag, st) = if m.shared { (libc::MAP_SHARED, status::FILE_SHARED) } else { (libc::MAP_PRIVATE, status::FILE_PRIVATE) };
                    e.flags |= flag as u32;
                    e.status = status::AREA_REGULAR | st | status::AREA_MEMFD;
                }
            }
            _ if m.shared && is_anon_shmem(m) && !private_shm.contains(&m.inode) => {
                let n = m.name.as_str();
                if n.starts_with("/SYSV") {
                    bail!("{}: SysV shared memory is not supported yet", what());
                }
                e.flags |= (libc::MAP_SHARED | libc::MAP_ANONYMOUS) as u32;
                e.status = status::AREA_REGULAR | status::ANON_SHARED;
                e.shmid = m.inode;
                e.pgoff = m.offset;
                if !files.anon_shmem.contains(&m.inode) {
                    files.anon_shmem.push(m.inode);
                }
            }
            _ if super::memfd::is_memfd_map(m) || (is_anon_shmem(m) && private_shm.contains(&m.inode)) => {
                if is_anon_shmem(m) && files.anon_shmem.contains(&m.inode) {
                    // An earlier task maps it only shared: its record says
                    // anonymous shared memory, one object the restore can't
                    // also give this task as the file of a private view.
                    bail!("{}: shared anonymous memory mapped privately here and only shared by a task dumped before", what());
                }
                let (id, fdflags) = super::memfd::record_mapping(pid, m, files)?;
                e.shmid = u64::from(id);
                e.pgoff = m.offset;
                e.fdflags = Some(fdflags);
                let (flag, st) = if m.shared { (libc::MAP_SHARED, status::FILE_SHARED) } else { (libc::MAP_PRIVATE, status::FILE_PRIVATE) };
                e.flags |= flag as u32;
                e.status = status::AREA_REGULAR | st | status::AREA_MEMFD;
            }
            _ if super::packet_ring::is_socket(m) => super::packet_ring::dump_vma(pid, m, &mut e)?,
            _ if m.is_file() => {
                let path = format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end);
                let fdflags = super::memfd::link_access(&path).with_context(what)?;
                let f = File::open(&path).with_context(|| format!("{}: can't open {path}", what()))?;
                let md = f.metadata().with_context(|| format!("{}: can't stat", what()))?;
                if std::os::unix::fs::FileTypeExt::is_socket(&md.file_type()) {
                    bail!("{}: socket mappings are not supported yet", what());
                }
                let id = match files.mapped_id(md.dev(), md.ino()) {
                    Some(id) => id,
                    None => {
                        let id = files.alloc_id();
                        files.push_reg_file(id, &m.name, &f, fdflags, 0).with_context(what)?;
                        files.set_mapped(md.dev(), md.ino(), id);
                        id
                    }
                };
                e.shmid = u64::from(id);
                e.pgoff = m.offset;
                e.fdflags = Some(fdflags);
                if m.shared {
                    e.flags |= libc::MAP_SHARED as u32;
                    e.status = status::AREA_REGULAR | status::FILE_SHARED;
                } else {
                    e.flags |= libc::MAP_PRIVATE as u32;
                    e.status = status::AREA_REGULAR | status::FILE_PRIVATE;
                }
            }
            _ => {
                // Anonymous, possibly named ([heap], [stack], [anon:...]).
                if m.shared {
                    e.flags |= (libc::MAP_SHARED | libc::MAP_ANONYMOUS) as u32;
                    e.status = status::AREA_REGULAR | status::ANON_SHARED;
                    e.shmid = m.inode;
                } else {
                    // Droppable memory (private, wiped on fork, its pages
                    // freeable by the kernel) is a mapping type of its own.
                    let kind = if m.has_flag("dp") { MAP_DROPPABLE } else { libc::MAP_PRIVATE as u32 };
                    e.flags |= kind | libc::MAP_ANONYMOUS as u32;
                    e.status = status::AREA_REGULAR | status::ANON_PRIVATE;
                }
                if m.name == "[heap]" {
                    e.status |= status::AREA_HEAP;
                }
            }
        }
        out.push(Vma { entry: e, map: m.clone() });
    }
    Ok(out)
}

/// Shared anonymous memory seen under its /dev/zero or SysV name.
fn is_anon_shmem(m: &MapEntry) -> bool {
    m.name.starts_with("/dev/zero") || m.name.starts_with("/SYSV") || m.name.starts_with("[anon_shmem")
}

/// The id of the task's executable in `files` (recorded like a mapped file).
pub fn exe_file_id(pid: i32, files: &mut FileTable) -> Result<u32> {
    let link = std::fs::read_link(format!("/proc/{pid}/exe")).with_context(|| format!("can't read exe link of {pid}"))?;
    let name = link.to_string_lossy().into_owned();
    let f = File::open(format!("/proc/{pid}/exe")).with_context(|| format!("can't open exe of {pid}"))?;
    let md = f.metadata()?;
    if let Some(id) = files.mapped_id(md.dev(), md.ino()) {
        return Ok(id);
    }
    if super::memfd::is_memfd_file(&name, &md) {
        // Run from a memfd (fexecve): the memfd's record, as its mappings'.
        return super::memfd::record_file(&name, &f, files, &|| format!("the executable of task {pid}"));
    }
    let id = files.alloc_id();
    files.push_reg_file(id, &name, &f, libc::O_RDONLY as u32, 0)?;
    files.set_mapped(md.dev(), md.ino(), id);
    Ok(id)
}

/// The mm image entry of a guard region `[start, end)`: only the range and
/// the GUARD status, as CRIU 4.2 records one.
pub fn guard_entry(start: u64, end: u64) -> VmaEntry {
    VmaEntry { start, end, status: status::AREA_GUARD, fd: -1, ..Default::default() }
}

/// The top of the user address space: 56 bits with 5-level paging (the
/// `la57` CPU flag), else 47, less a page.
fn task_size() -> u64 {
    static LA57: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let la57 = *LA57.get_or_init(|| {
        std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| c.lines().any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "la57")))
    });
    (1u64 << if la57 { 56 } else { 47 }) - 4096
}

/// Check the VMAs of an mm image before a restore uses them: each one
/// non-empty, page-aligned, below the top of the user address space (but
/// the vsyscall page), in order and not overlapping the one before. Guard
/// regions (VMA_AREA_GUARD, after the VMAs as CRIU 4.2 records them) lie
/// inside VMAs: they are checked alone. The error names `image` and the VMA.
pub fn validate(vmas: &[VmaEntry], image: &str) -> Result<()> {
    let top = task_size();
    let mut prev: Option<&VmaEntry> = None;
    for (i, v) in vmas.iter().enumerate() {
        let what = || format!("{image}: VMA #{i} {:#x}-{:#x}", v.start, v.end);
        if v.start >= v.end {
            bail!("{}: its start is not below its end", what());
        }
        if v.start % 4096 != 0 || v.end % 4096 != 0 {
            bail!("{}: not page-aligned", what());
        }
        if v.end > top && v.status & status::AREA_VSYSCALL == 0 {
            bail!("{}: beyond the user address space (top {top:#x})", what());
        }
        if v.status & status::AREA_GUARD != 0 {
            continue;
        }
        if let Some(p) = prev
            && v.start < p.end
        {
            bail!("{}: overlaps or comes before the VMA before it ({:#x}-{:#x})", what(), p.start, p.end);
        }
        prev = Some(v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_the_image_and_the_vma() {
        let v = |start: u64, end: u64| VmaEntry { start, end, ..Default::default() };
        let ok = [
            v(0x1000, 0x3000),
            v(0x3000, 0x4000),
            VmaEntry { status: status::AREA_VSYSCALL, ..v(0xffff_ffff_ff60_0000, 0xffff_ffff_ff60_1000) },
            guard_entry(0x2000, 0x3000),
        ];
        validate(&ok, "mm-7.img").unwrap();
        for (bad, why) in [
            (vec![v(0x3000, 0x1000)], "start is not below"),
            (vec![v(0x1000, 0x1000)], "start is not below"),
            (vec![v(0x1000, 0x1800)], "page-aligned"),
            (vec![v(0x1000, 0x8000_0000_0000_0000)], "beyond"),
            (vec![v(0x1000, 0x3000), v(0x2000, 0x4000)], "overlaps"),
            (vec![v(0x5000, 0x6000), v(0x1000, 0x2000)], "comes before"),
            (vec![v(0x1000, 0x3000), guard_entry(0x2000, 0x1000)], "start is not below"),
        ] {
            let e = validate(&bad, "mm-7.img").unwrap_err().to_string();
            assert!(e.starts_with("mm-7.img: VMA #") && e.contains(why), "{e}");
        }
    }

    fn anon(flags: &[&str]) -> MapEntry {
        MapEntry {
            start: 0x7000_0000_0000,
            end: 0x7000_0000_4000,
            read: true,
            write: true,
            vm_flags: flags.iter().map(|f| f.to_string()).collect(),
            ..Default::default()
        }
    }

    fn one(m: MapEntry) -> Result<VmaEntry> {
        let mut files = FileTable::new();
        Ok(collect(1, &[m], &mut files, false)?.remove(0).entry)
    }

    #[test]
    fn droppable_is_its_own_mapping_type() {
        let e = one(anon(&["rd", "wr", "nr", "wf", "dd", "dp"])).unwrap();
        assert_eq!(e.flags, MAP_DROPPABLE | (libc::MAP_ANONYMOUS | libc::MAP_NORESERVE) as u32);
        assert_eq!(e.status, status::AREA_REGULAR | status::ANON_PRIVATE);
        assert_eq!(e.madv, Some((1 << libc::MADV_WIPEONFORK) | (1 << libc::MADV_DONTDUMP)));
    }

    #[test]
    fn locked_and_locked_on_fault() {
        let e = one(anon(&["rd", "wr", "lo"])).unwrap();
        assert_eq!(e.flags, (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_LOCKED) as u32);
        let err = one(anon(&["rd", "wr", "lo", "lf"])).unwrap_err().to_string();
        assert!(err.contains("locked on fault") && err.contains("0x700000000000"), "{err}");
    }
}
