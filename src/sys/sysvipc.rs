//! SysV IPC calls of the calling thread's ipc namespace: listing the
//! objects (`*_INFO`, `*_STAT`), reading them (message copies, semaphore
//! values) and making them again (`*get`, `msgsnd`, `SETALL`, `IPC_SET`).

use std::io::{Error, Result};

/// `MSG_COPY` (msgrcv: copy message number `msgtyp`, leave it queued).
const MSG_COPY: libc::c_int = 0o40000;
const SHM_STAT: libc::c_int = 13;
const SHM_INFO: libc::c_int = 14;

/// Owner, mode, key and the kernel's id of one object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Perm {
    pub key: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    pub mode: u32,
}

fn perm(p: &libc::ipc_perm) -> Perm {
    Perm { key: p.__key, uid: p.uid, gid: p.gid, cuid: p.cuid, cgid: p.cgid, mode: u32::from(p.mode) }
}

fn check(r: libc::c_int) -> Result<libc::c_int> {
    if r < 0 { Err(Error::last_os_error()) } else { Ok(r) }
}

/// A message queue found by index: (its id, perms, qbytes, qnum).
pub struct MsgQueue {
    pub id: i32,
    pub perm: Perm,
    pub qbytes: u64,
    pub qnum: u64,
}

/// The highest index in use of the message queues.
pub fn msg_max_index() -> Result<i32> {
    let mut ds: libc::msqid_ds = unsafe_zeroed_msq();
    // SAFETY: MSG_INFO writes a struct msginfo, smaller than msqid_ds.
    check(unsafe { libc::msgctl(0, libc::MSG_INFO, &mut ds) })
}

fn unsafe_zeroed_msq() -> libc::msqid_ds {
    // SAFETY: msqid_ds is plain integers; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// The queue at index `idx` (None: a hole).
pub fn msg_stat(idx: i32) -> Result<Option<MsgQueue>> {
    let mut ds = unsafe_zeroed_msq();
    // SAFETY: MSG_STAT fills the msqid_ds it is given.
    let r = unsafe { libc::msgctl(idx, libc::MSG_STAT, &mut ds) };
    if r < 0 {
        let e = Error::last_os_error();
        return if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EIDRM)) { Ok(None) } else { Err(e) };
    }
    Ok(Some(MsgQueue { id: r, perm: perm(&ds.msg_perm), qbytes: ds.msg_qbytes, qnum: ds.msg_qnum }))
}

/// A copy of message number `n` of queue `id` (its type and bytes), at
/// most `max` bytes long.
pub fn msg_copy(id: i32, n: i64, max: usize) -> Result<(i64, Vec<u8>)> {
    let mut buf = vec![0u8; 8 + max];
    // SAFETY: buf holds a long mtype and `max` bytes of text.
    let r = unsafe { libc::msgrcv(id, buf.as_mut_ptr().cast(), max, n, libc::IPC_NOWAIT | MSG_COPY) };
    if r < 0 {
        return Err(Error::last_os_error());
    }
    let mtype = i64::from_ne_bytes(buf[..8].try_into().expect("8 bytes"));
    Ok((mtype, buf[8..8 + r as usize].to_vec()))
}

/// Queue a message (never blocks).
pub fn msg_send(id: i32, mtype: i64, data: &[u8]) -> Result<()> {
    let mut buf = Vec::with_capacity(8 + data.len());
    buf.extend_from_slice(&mtype.to_ne_bytes());
    buf.extend_from_slice(data);
    // SAFETY: buf is a long mtype then data.len() bytes.
    check(unsafe { libc::msgsnd(id, buf.as_ptr().cast(), data.len(), libc::IPC_NOWAIT) }).map(|_| ())
}

/// A new message queue (IPC_CREAT | IPC_EXCL with `mode`).
pub fn msg_get(key: i32, mode: u32) -> Result<i32> {
    // SAFETY: plain syscall.
    check(unsafe { libc::msgget(key, (mode & 0o777) as i32 | libc::IPC_CREAT | libc::IPC_EXCL) })
}

/// Set a queue's owner, mode and byte limit.
pub fn msg_set(id: i32, p: &Perm, qbytes: u64) -> Result<()> {
    let mut ds = unsafe_zeroed_msq();
    // SAFETY: IPC_STAT fills ds.
    check(unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) })?;
    ds.msg_perm.uid = p.uid;
    ds.msg_perm.gid = p.gid;
    ds.msg_perm.mode = (p.mode & 0o777) as u16;
    ds.msg_qbytes = qbytes;
    // SAFETY: IPC_SET reads ds.
    check(unsafe { libc::msgctl(id, libc::IPC_SET, &mut ds) }).map(|_| ())
}

/// A semaphore set found by index.
pub struct SemSet {
    pub id: i32,
    pub perm: Perm,
    pub nsems: u64,
}

fn zeroed_sem() -> libc::semid_ds {
    // SAFETY: semid_ds is plain integers; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// The highest index in use of the semaphore sets.
pub fn sem_max_index() -> Result<i32> {
    // SAFETY: seminfo is plain integers.
    let mut info: libc::seminfo = unsafe { std::mem::zeroed() };
    // SAFETY: SEM_INFO writes a struct seminfo.
    check(unsafe { libc::semctl(0, 0, libc::SEM_INFO, &mut info as *mut libc::seminfo) })
}

/// The set at index `idx` (None: a hole).
pub fn sem_stat(idx: i32) -> Result<Option<SemSet>> {
    let mut ds = zeroed_sem();
    // SAFETY: SEM_STAT fills the semid_ds it is given.
    let r = unsafe { libc::semctl(idx, 0, libc::SEM_STAT, &mut ds as *mut libc::semid_ds) };
    if r < 0 {
        let e = Error::last_os_error();
        return if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EIDRM)) { Ok(None) } else { Err(e) };
    }
    Ok(Some(SemSet { id: r, perm: perm(&ds.sem_perm), nsems: ds.sem_nsems }))
}

/// Every semaphore's value of set `id` (of `n`).
pub fn sem_getall(id: i32, n: usize) -> Result<Vec<u16>> {
    let mut v = vec![0u16; n];
    // SAFETY: GETALL writes nsems unsigned shorts.
    check(unsafe { libc::semctl(id, 0, libc::GETALL, v.as_mut_ptr()) })?;
    Ok(v)
}

/// Set every semaphore's value of set `id`.
pub fn sem_setall(id: i32, v: &[u16]) -> Result<()> {
    // SAFETY: SETALL reads nsems unsigned shorts.
    check(unsafe { libc::semctl(id, 0, libc::SETALL, v.as_ptr()) }).map(|_| ())
}

/// A new semaphore set of `n` semaphores.
pub fn sem_get(key: i32, n: i32, mode: u32) -> Result<i32> {
    // SAFETY: plain syscall.
    check(unsafe { libc::semget(key, n, (mode & 0o777) as i32 | libc::IPC_CREAT | libc::IPC_EXCL) })
}

/// Set a semaphore set's owner and mode.
pub fn sem_set(id: i32, p: &Perm) -> Result<()> {
    let mut ds = zeroed_sem();
    // SAFETY: IPC_STAT fills ds.
    check(unsafe { libc::semctl(id, 0, libc::IPC_STAT, &mut ds as *mut libc::semid_ds) })?;
    ds.sem_perm.uid = p.uid;
    ds.sem_perm.gid = p.gid;
    ds.sem_perm.mode = (p.mode & 0o777) as u16;
    // SAFETY: IPC_SET reads ds.
    check(unsafe { libc::semctl(id, 0, libc::IPC_SET, &mut ds as *mut libc::semid_ds) }).map(|_| ())
}

/// A shared memory segment found by index: (id, key, size).
pub struct ShmSeg {
    pub id: i32,
    pub perm: Perm,
    pub size: usize,
}

/// The highest index in use of the shared memory segments.
pub fn shm_max_index() -> Result<i32> {
    // SAFETY: shmid_ds is plain integers.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: SHM_INFO writes a struct shm_info, smaller than shmid_ds.
    check(unsafe { libc::shmctl(0, SHM_INFO, &mut ds) })
}

/// The segment at index `idx` (None: a hole).
pub fn shm_stat(idx: i32) -> Result<Option<ShmSeg>> {
    // SAFETY: shmid_ds is plain integers.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: SHM_STAT fills ds.
    let r = unsafe { libc::shmctl(idx, SHM_STAT, &mut ds) };
    if r < 0 {
        let e = Error::last_os_error();
        return if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EIDRM)) { Ok(None) } else { Err(e) };
    }
    Ok(Some(ShmSeg { id: r, perm: perm(&ds.shm_perm), size: ds.shm_segsz }))
}

/// A new shared memory segment of `size` bytes.
pub fn shm_get(key: i32, size: usize, mode: u32) -> Result<i32> {
    // SAFETY: plain syscall.
    check(unsafe { libc::shmget(key, size, (mode & 0o777) as i32 | libc::IPC_CREAT | libc::IPC_EXCL) })
}

/// Set a segment's owner and mode.
pub fn shm_set(id: i32, p: &Perm) -> Result<()> {
    // SAFETY: shmid_ds is plain integers.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT fills ds.
    check(unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) })?;
    ds.shm_perm.uid = p.uid;
    ds.shm_perm.gid = p.gid;
    ds.shm_perm.mode = (p.mode & 0o777) as u16;
    // SAFETY: IPC_SET reads ds.
    check(unsafe { libc::shmctl(id, libc::IPC_SET, &mut ds) }).map(|_| ())
}

/// Segment `id` attached to this process (read-only or not) until dropped.
pub struct ShmAttach {
    pub addr: usize,
}

impl ShmAttach {
    pub fn new(id: i32, read_only: bool) -> Result<ShmAttach> {
        let flags = if read_only { libc::SHM_RDONLY } else { 0 };
        // SAFETY: the kernel picks a free address for the segment.
        let p = unsafe { libc::shmat(id, std::ptr::null(), flags) };
        if p as isize == -1 {
            return Err(Error::last_os_error());
        }
        Ok(ShmAttach { addr: p as usize })
    }
}

impl Drop for ShmAttach {
    fn drop(&mut self) {
        // SAFETY: addr is the attach of `new`, used only through its
        // /proc/self/map_files file.
        unsafe { libc::shmdt(self.addr as *const libc::c_void) };
    }
}
