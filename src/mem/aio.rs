//! AIO rings (io_setup contexts), as CRIU 4.2 carries them: the ring's VMA
//! ("/[aio] (deleted)") recorded with the VMA_AREA_AIORING status, its pages
//! with the task's private memory, and one `aio_ring_entry` per ring in the
//! mm image (id = the ring's address, which is the context id; ring_len;
//! nr_req, CRIU's estimate of what io_setup was asked for). The restorer
//! recreates the context, brings the kernel's tail to the dumped one,
//! copies the events back and moves the ring over the old address
//! (`parasite/src/restorer.rs`, `aio_rings`).
//!
//! Requests in flight at dump time would be lost (the kernel keeps them,
//! not the ring). [`settle`] accounts for every request slot of each ring
//! from inside the frozen task: it fills the context with requests that
//! complete at once (1-byte writes to /dev/null) until the kernel refuses
//! more on every CPU, so that what the kernel holds back is known; slots
//! neither free, nor events in the ring, are requests in flight. It waits
//! a short while for those to complete. With none left, it takes the
//! kernel's tail on round the ring (more of its own requests, the head
//! following them) to where the task's events end, and puts the task's
//! events (and any that completed meanwhile) back in their slots: head and
//! tail are the task's again. A ring whose requests did not all complete
//! is refused by name, the task left running, its events moved to end at
//! the kernel's tail (where a request still in flight may complete): the
//! events and their order stay, the head and tail move.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::images::pb::{AioRingEntry, MmEntry, VmaEntry};
use crate::proc::maps::MapEntry;
use crate::task::remote::Remote;

/// How the kernel names a ring's mapping in /proc/PID/maps.
pub const RING_NAME: &str = "/[aio] (deleted)";
/// `struct aio_ring` (the header) and `struct io_event`.
pub const HEADER_LEN: u64 = 32;
pub const EVENT_LEN: u64 = 32;
const MAGIC: u32 = 0xa10a10a1;
const COMPAT_FEATURES: u32 = 1;
const INCOMPAT_FEATURES: u32 = 0;
const PAGE: u64 = 4096;

/// How long [`settle`] waits for requests in flight to complete.
const WAIT: Duration = Duration::from_secs(1);
/// `aio_data` of the probe's own requests.
const TAG: u64 = 0x6372_6975_2d72_7321;

/// Whether `m` is an AIO ring (older kernels name it "[aio]").
pub fn is_ring(m: &MapEntry) -> bool {
    m.shared && (m.name == RING_NAME || m.name.starts_with("[aio]"))
}

/// Fill `e` for ring `m` as CRIU 4.2 records one: MAP_SHARED, read-write
/// access, the AIORING status alone.
pub fn record_vma(m: &MapEntry, e: &mut VmaEntry) {
    e.flags |= libc::MAP_SHARED as u32;
    e.status = super::vma::status::AREA_AIORING;
    e.fdflags = Some(libc::O_RDWR as u32);
    e.pgoff = m.offset;
}

/// A ring's header (`struct aio_ring` without the events).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub id: u32,
    pub nr: u32,
    pub head: u32,
    pub tail: u32,
    pub magic: u32,
    pub compat: u32,
    pub incompat: u32,
    pub header_length: u32,
}

impl Header {
    pub fn parse(b: &[u8]) -> Header {
        let w = |i: usize| b.get(i * 4..i * 4 + 4).map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
        Header { id: w(0), nr: w(1), head: w(2), tail: w(3), magic: w(4), compat: w(5), incompat: w(6), header_length: w(7) }
    }

    /// Whether this is a ring the kernel made, `len` bytes long, with its
    /// head and tail inside it (what the restore needs).
    pub fn check(&self, len: u64) -> std::result::Result<(), String> {
        if self.magic != MAGIC || self.compat != COMPAT_FEATURES || self.incompat != INCOMPAT_FEATURES || u64::from(self.header_length) != HEADER_LEN {
            return Err(format!(
                "not an AIO ring header (magic {:#x}, features {}/{}, header length {})",
                self.magic, self.compat, self.incompat, self.header_length
            ));
        }
        if u64::from(self.nr) != slots(len) {
            return Err(format!("{} events in a ring of {len} bytes (room for {})", self.nr, slots(len)));
        }
        if self.head >= self.nr || self.tail >= self.nr {
            return Err(format!("head {} or tail {} outside its {} events", self.head, self.tail, self.nr));
        }
        Ok(())
    }
}

/// Event slots of a ring of `len` bytes.
pub fn slots(len: u64) -> u64 {
    len.saturating_sub(HEADER_LEN) / EVENT_LEN
}

/// What io_setup was asked for, as CRIU 4.2 estimates it: the kernel
/// doubles the request (after raising it to 4 per possible CPU), adds two
/// and rounds the ring up to whole pages; asking for half of what the ring
/// holds, less two, gives the same ring back. None: no ring of that size.
pub fn nr_req(len: u64) -> Option<u32> {
    if len == 0 || !len.is_multiple_of(PAGE) {
        return None;
    }
    let n = slots(len);
    u32::try_from(n.checked_sub(2)? / 2).ok().filter(|&r| r > 0)
}

/// The mm image's `aios`: one entry per ring VMA, in VMA order.
pub fn entries(vmas: &[super::vma::Vma]) -> Result<Vec<AioRingEntry>> {
    vmas.iter()
        .filter(|v| v.is(super::vma::status::AREA_AIORING))
        .map(|v| {
            let len = v.entry.end - v.entry.start;
            let nr_req = nr_req(len).with_context(|| format!("AIO ring at {:#x}: no io_setup makes a ring of {len} bytes", v.entry.start))?;
            Ok(AioRingEntry { id: v.entry.start, nr_req, ring_len: u32::try_from(len).context("AIO ring too long")? })
        })
        .collect()
}

/// A ring to recreate at restore: its address (the context id), length and
/// the io_setup request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    pub addr: u64,
    pub len: u64,
    pub nr_req: u32,
}

/// The rings of `mm`, each checked against its VMA (which the restore
/// premaps as private memory holding the dumped ring).
pub fn rings(mm: &MmEntry) -> Result<Vec<Ring>> {
    let ring_vmas: Vec<&VmaEntry> = mm.vmas.iter().filter(|v| v.status & super::vma::status::AREA_AIORING != 0).collect();
    if ring_vmas.len() != mm.aios.len() {
        bail!("the mm image has {} AIO ring VMA(s) but {} AIO ring record(s)", ring_vmas.len(), mm.aios.len());
    }
    mm.aios
        .iter()
        .map(|a| {
            let len = u64::from(a.ring_len);
            if !ring_vmas.iter().any(|v| v.start == a.id && v.end - v.start == len) {
                bail!("AIO ring {:#x} (len {len:#x}): no ring VMA of that range in the mm image", a.id);
            }
            if a.nr_req == 0 {
                bail!("AIO ring {:#x}: nr_req is 0", a.id);
            }
            Ok(Ring { addr: a.id, len, nr_req: a.nr_req })
        })
        .collect()
}

/// A CPU list as /sys/devices/system/cpu/{online,possible} writes it.
fn cpu_list(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
            out.extend(a..=b);
        }
    }
    out
}

fn sys_cpus(what: &str) -> Result<Vec<usize>> {
    let p = format!("/sys/devices/system/cpu/{what}");
    let l = cpu_list(&std::fs::read_to_string(&p).with_context(|| format!("reading {p}"))?);
    if l.is_empty() {
        bail!("{p} lists no CPU");
    }
    Ok(l)
}

/// The kernel's request accounting of a ring of `n` event slots on a
/// machine of `possible` CPUs: what the context can hold (free slots plus
/// events plus requests in flight) once every CPU's cache of free slots is
/// drained. The kernel hands free slots out in batches of
/// (n - 1) / (4 * possible) (at least 1) from a pool that starts at n - 1,
/// so the pool keeps the remainder, which no CPU can take.
pub fn capacity(n: u64, possible: u64) -> u64 {
    let batch = ((n - 1) / (possible.max(1) * 4)).max(1);
    n - 1 - (n - 1) % batch
}

/// Scratch page layout in the task: an iocb, the /dev/null path, the
/// saved and the working CPU masks, then iocb pointers.
const IOCB_AT: u64 = 0;
const PATH_AT: u64 = 64;
const SAVED_MASK_AT: u64 = 128;
const MASK_AT: u64 = 256;
const MASK_LEN: u64 = 128;
const PTRS_AT: u64 = 512;
const PTRS: u64 = (PAGE - PTRS_AT) / 8;
const IOCB_CMD_PWRITE: u16 = 1;

/// Requests in flight in the rings of frozen task `pid`: waited for a
/// short while, the dump refused when some remain (see the module doc).
/// `r` runs syscalls in the task; its scratch page is used here.
pub fn settle(pid: i32, r: &mut dyn Remote) -> Result<()> {
    let maps = crate::proc::maps::read(pid)?;
    let rings: Vec<&MapEntry> = maps.iter().filter(|m| is_ring(m)).collect();
    if rings.is_empty() {
        return Ok(());
    }
    // The probe writes the ring's head; the restore makes a read-write ring.
    if let Some(m) = rings.iter().find(|m| !(m.read && m.write)) {
        bail!("task {pid}: AIO ring at {:#x} (VMA {:#x}-{:#x}) is not mapped read-write: not supported", m.start, m.start, m.end);
    }
    let rings: Vec<(u64, u64)> = rings.iter().map(|m| (m.start, m.end - m.start)).collect();
    let mut p = Probe::open(pid, r)?;
    let res = rings.iter().try_for_each(|&(addr, len)| p.settle(addr, len));
    let closed = p.close();
    res.and(closed)
}

/// The task's side of a probe: its scratch page, a /dev/null fd in it and
/// its CPU mask saved.
struct Probe<'a> {
    pid: i32,
    r: &'a mut dyn Remote,
    mem: File,
    page: u64,
    null_fd: u64,
    saved_mask: Vec<u8>,
    online: Vec<usize>,
    possible: u64,
}

impl<'a> Probe<'a> {
    fn open(pid: i32, r: &'a mut dyn Remote) -> Result<Probe<'a>> {
        let mem = OpenOptions::new().read(true).write(true).open(format!("/proc/{pid}/mem")).with_context(|| format!("can't open memory of {pid}"))?;
        let page = r.scratch()?;
        let online = sys_cpus("online")?;
        let possible = sys_cpus("possible")?.len() as u64;
        let mut p = Probe { pid, r, mem, page, null_fd: u64::MAX, saved_mask: Vec::new(), online, possible };
        p.write(page + PATH_AT, b"/dev/null\0")?;
        let n = p.call("sched_getaffinity", libc::SYS_sched_getaffinity, [0, MASK_LEN, page + SAVED_MASK_AT, 0, 0, 0])?;
        p.saved_mask = p.r.read(page + SAVED_MASK_AT, n as usize)?;
        let fd = p.call("open /dev/null", libc::SYS_openat, [libc::AT_FDCWD as u64, page + PATH_AT, (libc::O_WRONLY | libc::O_CLOEXEC) as u64, 0, 0, 0])?;
        p.null_fd = fd as u64;
        if let Err(e) = p.prepare_iocbs() {
            let _ = p.close();
            return Err(e);
        }
        Ok(p)
    }

    /// The probe's request in the scratch page, and the pointers to it.
    fn prepare_iocbs(&mut self) -> Result<()> {
        let (page, fd) = (self.page, self.null_fd);
        // The probe's request: a 1-byte write to /dev/null, done at once.
        let mut iocb = [0u8; 64];
        iocb[0..8].copy_from_slice(&TAG.to_le_bytes());
        iocb[16..18].copy_from_slice(&IOCB_CMD_PWRITE.to_le_bytes());
        iocb[20..24].copy_from_slice(&(fd as u32).to_le_bytes());
        iocb[24..32].copy_from_slice(&(page + PATH_AT).to_le_bytes());
        iocb[32..40].copy_from_slice(&1u64.to_le_bytes());
        self.write(page + IOCB_AT, &iocb)?;
        let ptrs: Vec<u8> = (0..PTRS).flat_map(|_| (page + IOCB_AT).to_le_bytes()).collect();
        self.write(page + PTRS_AT, &ptrs)
    }

    fn call(&mut self, what: &str, nr: i64, args: [u64; 6]) -> Result<i64> {
        let r = self.r.syscall(nr, args)?;
        if (-4095..0).contains(&r) {
            bail!("task {}: {what} failed in the task: {}", self.pid, std::io::Error::from_raw_os_error(-r as i32));
        }
        Ok(r)
    }

    fn write(&self, addr: u64, b: &[u8]) -> Result<()> {
        self.mem.write_all_at(b, addr).with_context(|| format!("writing {} bytes at {addr:#x} of {}", b.len(), self.pid))
    }

    fn read(&self, addr: u64, len: u64) -> Result<Vec<u8>> {
        let mut b = vec![0u8; len as usize];
        self.mem.read_exact_at(&mut b, addr).with_context(|| format!("reading {len} bytes at {addr:#x} of {}", self.pid))?;
        Ok(b)
    }

    fn read_u32(&self, addr: u64) -> Result<u32> {
        let b = self.read(addr, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Run the task on `cpu` only; false when the kernel does not let it.
    fn pin(&mut self, cpu: usize) -> Result<bool> {
        let mut mask = vec![0u8; MASK_LEN as usize];
        let Some(byte) = mask.get_mut(cpu / 8) else { return Ok(false) };
        *byte = 1 << (cpu % 8);
        self.write(self.page + MASK_AT, &mask)?;
        Ok(self.r.syscall(libc::SYS_sched_setaffinity, [0, MASK_LEN, self.page + MASK_AT, 0, 0, 0])? == 0)
    }

    /// Fill the context at `ctx` with the probe's requests, on every CPU
    /// in turn, until the kernel refuses more or `room` are in: how many
    /// went in, and the error that stopped it, if any.
    fn fill(&mut self, ctx: u64, room: u64) -> (u64, Option<anyhow::Error>) {
        let mut ours = 0;
        let cpus = self.online.clone();
        for cpu in cpus {
            match self.pin(cpu) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => return (ours, Some(e)),
            }
            while ours < room {
                let k = (room - ours).min(PTRS);
                match self.r.syscall(libc::SYS_io_submit, [ctx, k, self.page + PTRS_AT, 0, 0, 0]) {
                    Ok(n) if n > 0 => ours += n as u64,
                    Ok(n) if n == -(libc::EAGAIN as i64) => break,
                    Ok(n) => {
                        let e = std::io::Error::from_raw_os_error(-(n as i32));
                        return (ours, Some(anyhow::anyhow!("task {}: io_submit on the AIO context {ctx:#x}: {e}", self.pid)));
                    }
                    Err(e) => return (ours, Some(e)),
                }
            }
        }
        (ours, None)
    }

    /// Account for every request of the ring at `addr` (see the module doc).
    fn settle(&mut self, addr: u64, len: u64) -> Result<()> {
        let what = format!("task {}: AIO ring at {addr:#x} (VMA {addr:#x}-{:#x})", self.pid, addr + len);
        let before = self.read(addr, len)?;
        let h = Header::parse(&before);
        h.check(len).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        // A ring mapping a child inherited through fork is not a context
        // of its own (the kernel gives contexts to no child): the restore
        // would make one, and the mapping would no longer be shared.
        let r = self.r.syscall(libc::SYS_io_getevents, [addr, 0, 0, 0, 0, 0])?;
        if r == -(libc::EINVAL as i64) {
            bail!("{what}: the mapping is not one of the task's AIO contexts (a ring inherited through fork): not supported");
        }
        if r < 0 {
            bail!("{what}: io_getevents: {}", std::io::Error::from_raw_os_error(-r as i32));
        }
        let n = u64::from(h.nr);
        let (head, tail) = (u64::from(h.head), u64::from(h.tail));
        let unreaped = (tail + n - head) % n;
        let cap = capacity(n, self.possible);
        if unreaped > cap {
            bail!("{what}: {unreaped} unreaped events, more than the {cap} the kernel lets it hold");
        }
        let (ours, fill_err) = self.fill(addr, cap - unreaped);
        let unpinned = self.r.syscall(libc::SYS_sched_setaffinity, [0, self.saved_mask.len() as u64, self.page + SAVED_MASK_AT, 0, 0, 0]);
        // Wait for the requests in flight, counting those that complete.
        let until = Instant::now() + WAIT;
        let (end, in_flight) = loop {
            let end = u64::from(self.read_u32(addr + 12)?);
            let added = (end + n - tail) % n;
            // None: more events than the accounting allows (taken out below
            // all the same, then the dump fails).
            let in_flight = cap.checked_sub(unreaped + added).filter(|_| added >= ours);
            if fill_err.is_some() || in_flight.is_none_or(|f| f == 0) || Instant::now() >= until {
                break (end, in_flight);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // Ours out again: the task's events, then those that completed
        // meanwhile, end at the kernel's tail.
        let slot = |i: u64| HEADER_LEN + (i % n) * EVENT_LEN;
        let now = self.read(addr, len)?;
        let mine = |i: u64| {
            let at = slot(i) as usize;
            let ev = &now[at..at + EVENT_LEN as usize];
            u64::from_le_bytes(ev[0..8].try_into().unwrap_or_default()) == TAG
                && u64::from_le_bytes(ev[8..16].try_into().unwrap_or_default()) == self.page + IOCB_AT
        };
        let mut events: Vec<&[u8]> = (head..head + unreaped).map(|i| &before[slot(i) as usize..(slot(i) + EVENT_LEN) as usize]).collect();
        let added = (end + n - tail) % n;
        let foreign: Vec<u64> = (tail..tail + added).filter(|&i| !mine(i)).collect();
        if added - foreign.len() as u64 != ours {
            bail!("{what}: {} of the probe's {ours} events found in the ring", added - foreign.len() as u64);
        }
        events.extend(foreign.iter().map(|&i| &now[slot(i) as usize..(slot(i) + EVENT_LEN) as usize]));
        let keep = events.len() as u64;
        // Nothing in flight: the kernel's tail goes on round to where the
        // task's events end, so that its head and tail are as they were.
        // Else (or if that fails) the task's events move to end at the
        // kernel's tail: a request still in flight may complete there.
        let mut round_err = None;
        let new_head = if fill_err.is_none() && in_flight == Some(0) && ours > 0 {
            match self.round(addr, n, end, ours, keep) {
                Ok(h) => h,
                Err(e) => {
                    round_err = Some(e);
                    (u64::from(self.read_u32(addr + 12)?) + n - keep) % n
                }
            }
        } else {
            (end + n - keep) % n
        };
        for (k, ev) in events.iter().enumerate() {
            self.write(addr + slot(new_head + k as u64), ev)?;
        }
        self.write(addr + 8, &(new_head as u32).to_le_bytes())?;
        if let Some(e) = fill_err.or(round_err) {
            return Err(e.context(what));
        }
        let Some(in_flight) = in_flight else {
            bail!("{what}: the ring went from tail {tail} to {end} with {ours} requests of ours: can't account for its requests");
        };
        let r = unpinned?;
        if r != 0 {
            bail!("task {}: restoring its CPU affinity failed: {}", self.pid, std::io::Error::from_raw_os_error(-r as i32));
        }
        if in_flight > 0 {
            bail!(
                "{what}: {in_flight} request(s) in flight did not complete within {} ms: in-flight AIO requests can't be dumped",
                WAIT.as_millis()
            );
        }
        let now_tail = self.read_u32(addr + 12)?;
        tracing::info!(
            "{what}: no request in flight ({unreaped} unreaped events, {} completed while waiting, {ours} probe requests); head {head} tail {tail}, now {new_head} {now_tail}",
            foreign.len()
        );
        Ok(())
    }

    /// Take the kernel's tail of the ring at `addr` (`n` slots) from `end`
    /// on round to `end + n - ours`, where it was before the probe's `ours`
    /// requests (plus what completed since), with more of the probe's
    /// requests, the head following them up to `keep` events short of the
    /// tail (the kernel then counts `keep` slots taken, as before): the
    /// head, which is the task's again.
    fn round(&mut self, addr: u64, n: u64, end: u64, ours: u64, keep: u64) -> Result<u64> {
        let x = n - ours;
        let stop = x.checked_sub(keep).context("more events to keep than the round leaves room for")?;
        // One CPU: free slots cached on another could stop the round.
        let cpus = self.online.clone();
        let mut pinned = false;
        for cpu in cpus {
            if self.pin(cpu)? {
                pinned = true;
                break;
            }
        }
        let mut done = 0u64;
        let res = (|| -> Result<()> {
            // Every event taken for now: their slots are free again.
            self.write(addr + 8, &(end as u32).to_le_bytes())?;
            while done < x {
                let k = (x - done).min(PTRS);
                let r = self.r.syscall(libc::SYS_io_submit, [addr, k, self.page + PTRS_AT, 0, 0, 0])?;
                if r <= 0 {
                    bail!("task {}: io_submit on the AIO context {addr:#x}: {}", self.pid, std::io::Error::from_raw_os_error(-r as i32));
                }
                done += r as u64;
                self.write(addr + 8, &(((end + done.min(stop)) % n) as u32).to_le_bytes())?;
            }
            Ok(())
        })();
        if pinned {
            self.r.syscall(libc::SYS_sched_setaffinity, [0, self.saved_mask.len() as u64, self.page + SAVED_MASK_AT, 0, 0, 0])?;
        }
        res?;
        Ok((end + stop) % n)
    }

    /// Close the /dev/null fd and give the task its CPU mask back.
    fn close(mut self) -> Result<()> {
        let set = self.r.syscall(libc::SYS_sched_setaffinity, [0, self.saved_mask.len() as u64, self.page + SAVED_MASK_AT, 0, 0, 0]);
        if self.null_fd != u64::MAX {
            self.call("close", libc::SYS_close, [self.null_fd, 0, 0, 0, 0, 0])?;
        }
        if set? != 0 {
            bail!("task {}: restoring its CPU affinity failed", self.pid);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nr_req_is_criu_s_estimate() {
        // One page: 127 events; CRIU 4.2 recorded nr_req 62 for it.
        assert_eq!(slots(4096), 127);
        assert_eq!(nr_req(4096), Some(62));
        assert_eq!(nr_req(8192), Some(126));
        assert_eq!(nr_req(4095), None);
        assert_eq!(nr_req(0), None);
    }

    #[test]
    fn capacity_keeps_the_pool_s_remainder() {
        // 127 slots, 2 CPUs: batches of 15, 126 = 8 * 15 + 6.
        assert_eq!(capacity(127, 2), 120);
        // Batches of one: every slot but the one the ring keeps empty.
        assert_eq!(capacity(127, 64), 126);
    }

    #[test]
    fn header_checks() {
        let mut b = vec![0u8; 32];
        for (i, v) in [0u32, 127, 5, 9, MAGIC, 1, 0, 32].iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        let h = Header::parse(&b);
        assert_eq!((h.nr, h.head, h.tail), (127, 5, 9));
        assert_eq!(h.check(4096), Ok(()));
        assert!(h.check(8192).unwrap_err().contains("127 events"));
        let bad = Header { magic: 1, ..h };
        assert!(bad.check(4096).unwrap_err().contains("magic 0x1"));
        let out = Header { tail: 127, ..h };
        assert!(out.check(4096).is_err());
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list("0-1\n"), vec![0, 1]);
        assert_eq!(cpu_list("0,2-3,7"), vec![0, 2, 3, 7]);
    }

    #[test]
    fn rings_match_their_vmas() {
        use super::super::vma::status;
        let vma = VmaEntry { start: 0x7000_0000_0000, end: 0x7000_0000_1000, status: status::AREA_AIORING, ..Default::default() };
        let mut mm = MmEntry { vmas: vec![vma], aios: vec![AioRingEntry { id: vma.start, nr_req: 62, ring_len: 4096 }], ..Default::default() };
        assert_eq!(rings(&mm).unwrap(), vec![Ring { addr: vma.start, len: 4096, nr_req: 62 }]);
        mm.aios[0].ring_len = 8192;
        assert!(rings(&mm).is_err());
        mm.aios.clear();
        assert!(rings(&mm).is_err());
    }

    /// A ring of our own, as the dump records it: the VMA and the
    /// aio_ring_entry CRIU 4.2 writes, through mm-N.img and back to the
    /// ring the restore makes; io_setup with the recorded nr_req makes a
    /// ring of the same size on this machine.
    #[test]
    fn own_ring_round_trips_through_the_mm_image() {
        let ctx = match crate::sys::probe::AioCtx::setup(16) {
            Ok(c) => c,
            Err(e) => {
                println!("skipped: no AIO here (io_setup: {e})");
                return;
            }
        };
        let ring_of = |id: u64| {
            crate::proc::maps::read(std::process::id() as i32).unwrap().into_iter().find(|m| m.start == id).expect("the ring in our maps")
        };
        let m = ring_of(ctx.id());
        assert!(is_ring(&m), "{m:?}");
        let mut files = crate::files::FileTable::new();
        let vmas = super::super::vma::collect(std::process::id() as i32, std::slice::from_ref(&m), &mut files, false).unwrap();
        let e = vmas[0].entry;
        assert_eq!((e.status, e.flags, e.fd, e.fdflags), (super::super::vma::status::AREA_AIORING, libc::MAP_SHARED as u32, -1, Some(libc::O_RDWR as u32)));
        assert!(vmas[0].dumps_private_pages());
        let len = m.end - m.start;
        let mut b = vec![0u8; HEADER_LEN as usize];
        crate::proc::mem(std::process::id() as i32).unwrap().read_exact_at(&mut b, m.start).unwrap();
        let h = Header::parse(&b);
        assert_eq!(h.check(len), Ok(()));
        let aios = entries(&vmas).unwrap();
        assert_eq!(aios, vec![AioRingEntry { id: ctx.id(), nr_req: nr_req(len).unwrap(), ring_len: len as u32 }]);

        let tmp = tempfile::tempdir().unwrap();
        let dir = crate::images::ImageDir::open(tmp.path()).unwrap();
        let mm = MmEntry { vmas: vec![e], aios, ..Default::default() };
        let kind = crate::images::kind::kinds::mm();
        crate::task::images::write_one(&dir, &kind.file_name(1), kind, &mm).unwrap();
        let back = crate::task::images::read_one(&dir, &kind.file_name(1), kind).unwrap();
        assert_eq!(back.aios, mm.aios);
        let rings = rings(&back).unwrap();
        assert_eq!(rings, vec![Ring { addr: ctx.id(), len, nr_req: nr_req(len).unwrap() }]);

        let again = crate::sys::probe::AioCtx::setup(rings[0].nr_req).unwrap();
        let m2 = ring_of(again.id());
        assert_eq!(m2.end - m2.start, len, "io_setup({}) made another size of ring", rings[0].nr_req);
    }
}
