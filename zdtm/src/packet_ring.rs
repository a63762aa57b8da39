//! Packet rings mapped by the packet tests: the mapping, its words read
//! and written as the kernel shares them, and TPACKET_V2 frames received
//! from the rx ring and sent through the tx ring.

use std::os::fd::RawFd;

use crate::packet::readable;

/// TP_STATUS_USER (rx: the frame is the program's) and
/// TP_STATUS_SEND_REQUEST (tx: the program asks it sent).
pub const TP_STATUS_USER: u32 = 1;
pub const TP_STATUS_SEND_REQUEST: u32 = 1;

/// A ring mapping of a packet socket, shared, read-write.
pub struct RingMap {
    pub base: *mut u8,
    pub len: usize,
}

impl RingMap {
    /// mmap the socket's rings (`len` bytes: the rx ring, then the tx ring).
    pub fn new(fd: RawFd, len: usize) -> RingMap {
        // SAFETY: a new shared mapping the kernel places; nothing else uses it.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0) };
        if p == libc::MAP_FAILED {
            crate::fail(&format!("mmap of the packet rings: {}", crate::last_err()));
        }
        RingMap { base: p.cast(), len }
    }

    /// The u32 at byte `off` (the kernel writes it: read each time).
    pub fn u32_at(&self, off: usize) -> u32 {
        assert!(off + 4 <= self.len);
        // SAFETY: inside the mapping, 4-byte aligned by the callers' layouts.
        unsafe { std::ptr::read_volatile(self.base.add(off).cast::<u32>()) }
    }

    pub fn u16_at(&self, off: usize) -> u16 {
        assert!(off + 2 <= self.len);
        // SAFETY: as above.
        unsafe { std::ptr::read_volatile(self.base.add(off).cast::<u16>()) }
    }

    pub fn set_u32(&self, off: usize, v: u32) {
        assert!(off + 4 <= self.len);
        // SAFETY: as above; the ring is the program's to write where the status says so.
        unsafe { std::ptr::write_volatile(self.base.add(off).cast::<u32>(), v) }
    }

    pub fn bytes(&self, off: usize, len: usize) -> Vec<u8> {
        assert!(off + len <= self.len);
        // SAFETY: inside the mapping.
        (0..len).map(|i| unsafe { std::ptr::read_volatile(self.base.add(off + i)) }).collect()
    }

    pub fn write(&self, off: usize, data: &[u8]) {
        assert!(off + data.len() <= self.len);
        for (i, b) in data.iter().enumerate() {
            // SAFETY: inside the mapping.
            unsafe { std::ptr::write_volatile(self.base.add(off + i), *b) }
        }
    }

    /// The frame a TPACKET_V2 rx frame at `off` holds, once the kernel
    /// hands it over (up to 2 seconds).
    pub fn v2_rx(&self, fd: RawFd, off: usize) -> Result<Vec<u8>, String> {
        for _ in 0..200 {
            let st = self.u32_at(off);
            if st & TP_STATUS_USER != 0 {
                let (snap, mac) = (self.u32_at(off + 8) as usize, self.u16_at(off + 12) as usize);
                return Ok(self.bytes(off + mac, snap));
            }
            readable(fd, 10);
        }
        Err(format!("the rx frame at {off:#x} was never filled (status {:#x})", self.u32_at(off)))
    }

    /// Queue `frame` in the TPACKET_V2 tx frame at `off` and have the
    /// kernel send it.
    pub fn v2_tx(&self, fd: RawFd, off: usize, frame: &[u8]) -> Result<(), String> {
        // tpacket2_hdr's aligned size: the data follows it.
        self.write(off + 32, frame);
        self.set_u32(off + 4, frame.len() as u32);
        self.set_u32(off + 8, frame.len() as u32);
        self.set_u32(off, TP_STATUS_SEND_REQUEST);
        // SAFETY: send with no data: the kernel sends the ring's requested frames.
        let n = unsafe { libc::send(fd, std::ptr::null(), 0, 0) };
        if n < 0 {
            return Err(format!("send through the tx ring: {}", crate::last_err()));
        }
        Ok(())
    }
}
