//! Magic numbers and the table of image kinds: for each kind, its name (as
//! crit prints it), magic, file-name template, entry message and what raw
//! payload follows each entry. One row per kind, like CRIU's image-desc.
//! [`kinds`] gives each row its entry type ([`Kind`]) for typed code.

use std::marker::PhantomData;

/// First magic of every image file but inventory and the raw ones.
pub const IMG_COMMON_MAGIC: u32 = 0x5456_4319;
/// First magic of service files (stats-dump, stats-restore, irmap-cache).
pub const IMG_SERVICE_MAGIC: u32 = 0x5510_5940;
/// `inventory.img` carries only this magic.
pub const INVENTORY_MAGIC: u32 = 0x5831_3116;
/// Raw images (pages-N.img, ip dumps, tarballs) have no magic.
pub const RAW_IMAGE_MAGIC: u32 = 0;
/// The images format version CRIU 4.2 writes into inventory.
pub const CRTOOLS_IMAGES_V1_1: u32 = 2;

/// What follows each protobuf entry in the file, outside protobuf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Nothing: entries follow each other.
    None,
    /// `pipe_data_entry.bytes` raw bytes (pipes-data, fifo-data).
    PipeData,
    /// `sk_packet_entry.length` raw bytes (sk-queues).
    SkQueue,
    /// `tcp_stream_entry.inq_len` + `outq_len` raw bytes.
    TcpStream,
    /// `bpfmap_data_entry.keys_bytes` + `values_bytes` raw bytes.
    BpfMapData,
    /// `ipc_shm_entry.size` bytes, padded to 4.
    IpcShm,
    /// `ipc_sem_entry.nsems` u16 values, padded to 8.
    IpcSem,
    /// `ipc_msg_entry.qnum` × (length-prefixed `ipc_msg`, `msize` bytes padded to 8).
    IpcMsg,
    /// First entry `pagemap_head`, then `pagemap_entry`s.
    Pagemap,
    /// `ghost_file_entry`, then either `ghost_chunk_entry` + data pairs or
    /// the raw file contents to the end.
    GhostFile,
}

/// One kind of image file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageKind {
    /// The name crit prints in `"magic"`.
    pub name: &'static str,
    pub magic: u32,
    /// File name template; `{}` is the id (pid, ns id, ...). Empty when the
    /// kind has no file of its own in CRIU 4.2.
    pub file: &'static str,
    /// Service files carry IMG_SERVICE_MAGIC first.
    pub service: bool,
    /// Protobuf message of the entries.
    pub entry: &'static str,
    pub payload: Payload,
}

const fn k(name: &'static str, magic: u32, file: &'static str, entry: &'static str) -> ImageKind {
    ImageKind { name, magic, file, service: false, entry, payload: Payload::None }
}

const fn kp(name: &'static str, magic: u32, file: &'static str, entry: &'static str, payload: Payload) -> ImageKind {
    ImageKind { name, magic, file, service: false, entry, payload }
}

/// Every image kind CRIU 4.2 reads or writes with protobuf entries.
pub const KINDS: &[ImageKind] = &[
    k("INVENTORY", INVENTORY_MAGIC, "inventory.img", "inventory_entry"),
    k("PSTREE", 0x5027_3030, "pstree.img", "pstree_entry"),
    k("FDINFO", 0x5621_3732, "fdinfo-{}.img", "fdinfo_entry"),
    kp("PAGEMAP", 0x5608_4025, "pagemap-{}.img", "pagemap_entry", Payload::Pagemap),
    k("CORE", 0x5505_3847, "core-{}.img", "core_entry"),
    k("IDS", 0x5443_2030, "ids-{}.img", "task_kobj_ids_entry"),
    k("VMAS", 0x5412_3737, "vmas-{}.img", "vma_entry"),
    k("PIPES", 0x5651_3555, "pipes.img", "pipe_entry"),
    kp("PIPES_DATA", 0x5645_3709, "pipes-data.img", "pipe_data_entry", Payload::PipeData),
    k("FIFO", 0x5836_4939, "fifo.img", "fifo_entry"),
    kp("FIFO_DATA", 0x5933_3054, "fifo-data.img", "pipe_data_entry", Payload::PipeData),
    k("SIGACT", 0x5534_4201, "sigacts-{}.img", "sa_entry"),
    k("UNIXSK", 0x5437_3943, "unixsk.img", "unix_sk_entry"),
    k("INETSK", 0x5644_3851, "inetsk.img", "inet_sk_entry"),
    k("PACKETSK", 0x6045_4618, "packetsk.img", "packet_sock_entry"),
    k("ITIMERS", 0x5746_4056, "itimers-{}.img", "itimer_entry"),
    k("POSIX_TIMERS", 0x5260_3957, "posix-timers-{}.img", "posix_timer_entry"),
    kp("SK_QUEUES", 0x5626_4026, "sk-queues.img", "sk_packet_entry", Payload::SkQueue),
    k("UTSNS", 0x5447_3203, "utsns-{}.img", "utsns_entry"),
    k("CREDS", 0x5402_3547, "creds-{}.img", "creds_entry"),
    k("IPC_VAR", 0x5311_5007, "ipcns-var-{}.img", "ipc_var_entry"),
    kp("IPCNS_SHM", 0x4628_3044, "ipcns-shm-{}.img", "ipc_shm_entry", Payload::IpcShm),
    kp("IPCNS_MSG", 0x5545_3737, "ipcns-msg-{}.img", "ipc_msg_entry", Payload::IpcMsg),
    kp("IPCNS_SEM", 0x5957_3019, "ipcns-sem-{}.img", "ipc_sem_entry", Payload::IpcSem),
    k("REG_FILES", 0x5036_3636, "reg-files.img", "reg_file_entry"),
    k("EXT_FILES", 0x5925_5641, "ext-files.img", "ext_file_entry"),
    k("FS", 0x5140_3912, "fs-{}.img", "fs_entry"),
    k("MM", 0x5749_2820, "mm-{}.img", "mm_entry"),
    k("REMAP_FPATH", 0x5913_3954, "remap-fpath.img", "remap_file_path_entry"),
    kp("GHOST_FILE", 0x5258_3605, "ghost-file-{:x}.img", "ghost_file_entry", Payload::GhostFile),
    kp("TCP_STREAM", 0x5146_5506, "tcp-stream-{:x}.img", "tcp_stream_entry", Payload::TcpStream),
    k("EVENTFD_FILE", 0x4452_3722, "eventfd.img", "eventfd_file_entry"),
    k("EVENTPOLL_FILE", 0x4502_3858, "eventpoll.img", "eventpoll_file_entry"),
    k("EVENTPOLL_TFD", 0x4443_3746, "eventpoll-tfd.img", "eventpoll_tfd_entry"),
    k("SIGNALFD", 0x5732_3820, "signalfd.img", "signalfd_entry"),
    k("INOTIFY_FILE", 0x4842_4431, "inotify.img", "inotify_file_entry"),
    k("INOTIFY_WD", 0x5456_2009, "inotify-wd.img", "inotify_wd_entry"),
    k("MNTS", 0x5556_3928, "mountpoints-{}.img", "mnt_entry"),
    k("NETDEV", 0x5737_3951, "netdev-{}.img", "net_device_entry"),
    k("NETNS", 0x5593_3752, "netns-{}.img", "netns_entry"),
    k("TTY_FILES", 0x5943_3025, "tty.img", "tty_file_entry"),
    k("TTY_INFO", 0x5945_3036, "tty-info.img", "tty_info_entry"),
    k("TTY_DATA", 0x5941_3026, "tty-data.img", "tty_data_entry"),
    k("FILE_LOCKS", 0x5432_3616, "filelocks.img", "file_lock_entry"),
    k("RLIMIT", 0x5711_3925, "rlimit-{}.img", "rlimit_entry"),
    k("FANOTIFY_FILE", 0x5509_6122, "fanotify.img", "fanotify_file_entry"),
    k("FANOTIFY_MARK", 0x5650_6035, "fanotify-mark.img", "fanotify_mark_entry"),
    k("SIGNAL", 0x5925_5647, "signal-p-{}.img", "siginfo_entry"),
    k("NETLINK_SK", 0x5800_5614, "netlinksk.img", "netlink_sk_entry"),
    k("NS_FILES", 0x6139_4011, "ns-files.img", "ns_file_entry"),
    k("TUNFILE", 0x5714_3751, "tunfile.img", "tunfile_entry"),
    k("CGROUP", 0x5938_3330, "cgroup.img", "cgroup_entry"),
    k("TIMERFD", 0x5049_3712, "timerfd.img", "timerfd_entry"),
    k("CPUINFO", 0x6140_4013, "cpuinfo.img", "cpuinfo_entry"),
    k("USERNS", 0x5547_4906, "userns-{}.img", "userns_entry"),
    k("SECCOMP", 0x6441_3049, "seccomp.img", "seccomp_entry"),
    k("BINFMT_MISC", 0x6734_3323, "binfmt-misc.img", "binfmt_misc_entry"),
    k("AUTOFS", 0x4935_3943, "autofs-{}.img", "autofs_entry"),
    k("FILES", 0x5630_3138, "files.img", "file_entry"),
    k("MEMFD_INODE", 0x4845_3499, "memfd.img", "memfd_inode_entry"),
    k("TIMENS", 0x4311_4433, "timens-{}.img", "timens_entry"),
    k("PIDNS", 0x6115_7326, "pidns-{}.img", "pidns_entry"),
    k("BPFMAP_FILE", 0x5750_6142, "bpfmap-file.img", "bpfmap_file_entry"),
    kp("BPFMAP_DATA", 0x6432_4033, "bpfmap-data.img", "bpfmap_data_entry", Payload::BpfMapData),
    k("APPARMOR", 0x5942_3047, "apparmor.img", "apparmor_entry"),
    k("PIDFD", 0x5443_5556, "", "pidfd_entry"),
    ImageKind {
        name: "STATS",
        magic: 0x5709_3306,
        file: "stats-{}",
        service: true,
        entry: "stats_entry",
        payload: Payload::None,
    },
    ImageKind {
        name: "IRMAP_CACHE",
        magic: 0x5700_4059,
        file: "irmap-cache",
        service: true,
        entry: "irmap_cache_entry",
        payload: Payload::None,
    },
];

/// Find a kind by its magic.
pub fn by_magic(magic: u32) -> Option<&'static ImageKind> {
    KINDS.iter().find(|k| k.magic == magic)
}

/// Find a kind by its crit name (`"CORE"`), for code that handles any
/// image (crit); typed code uses [`kinds`].
pub fn by_name(name: &str) -> Option<&'static ImageKind> {
    KINDS.iter().find(|k| k.name == name)
}

impl ImageKind {
    /// The file name for id `id` (`core-{}.img` → `core-42.img`).
    pub fn file_name(&self, id: u64) -> String {
        if self.file.contains("{:x}") {
            self.file.replace("{:x}", &format!("{id:x}"))
        } else {
            self.file.replace("{}", &id.to_string())
        }
    }

    /// The file name with a textual id (`stats-{}` → `stats-dump`).
    pub fn file_name_str(&self, id: &str) -> String {
        self.file.replace("{}", id)
    }
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The row named `name` (crit's name) if its entries are the protobuf
/// message `entry`; what [`Kind::new`] checks, usable in consts.
pub const fn typed_row(name: &str, entry: &str) -> Result<&'static ImageKind, &'static str> {
    let mut i = 0;
    while i < KINDS.len() {
        let row: &'static ImageKind = &KINDS[i];
        if str_eq(row.name, name) {
            return if str_eq(row.entry, entry) { Ok(row) } else { Err("the image kind's entries are another message") };
        }
        i += 1;
    }
    Err("no image kind of that name in KINDS")
}

/// An image kind whose entries are the prost type `M`: what
/// [`ImageWriter`](super::ImageWriter) and a typed
/// [`ImageReader`](super::ImageReader) are made from, so writing or reading
/// another message for the kind does not compile. Dereferences to its
/// [`ImageKind`] row (file name, magic, payload).
///
/// ```
/// use criu::images::{kind::kinds, pb::CoreEntry, ImageDir, ImageReader, ImageWriter};
/// # let tmp = std::env::temp_dir().join(format!("criu-kind-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&tmp).unwrap();
/// let dir = ImageDir::open(&tmp).unwrap();
/// let mut w = ImageWriter::create(&dir, "core-1.img", kinds::core()).unwrap();
/// w.write(&CoreEntry::default()).unwrap();
/// w.finish().unwrap();
/// let core: CoreEntry = ImageReader::open_kind(&dir, "core-1.img", kinds::core()).unwrap().expect().unwrap();
/// # std::fs::remove_dir_all(&tmp).unwrap();
/// ```
///
/// A core image holds `core_entry`s: writing an `mm_entry` to one does not
/// compile (E0308, expected `&CoreEntry`, found `&MmEntry`),
///
/// ```compile_fail,E0308
/// use criu::images::{kind::kinds, pb::MmEntry, ImageDir, ImageWriter};
/// let dir = ImageDir::open(&std::env::temp_dir()).unwrap();
/// let mut w = ImageWriter::create(&dir, "core-1.img", kinds::core()).unwrap();
/// w.write(&MmEntry::default()).unwrap();
/// ```
///
/// nor does reading one from it.
///
/// ```compile_fail,E0308
/// use criu::images::{kind::kinds, pb::MmEntry, ImageDir, ImageReader};
/// let dir = ImageDir::open(&std::env::temp_dir()).unwrap();
/// let mm: MmEntry = ImageReader::open_kind(&dir, "core-1.img", kinds::core()).unwrap().expect().unwrap();
/// ```
pub struct Kind<M> {
    row: &'static ImageKind,
    entry: PhantomData<fn() -> M>,
}

impl<M: prost::Name> Kind<M> {
    /// The kind crit calls `name`, with entries of type `M`. In a const
    /// (as every [`kinds`] function is), a name that is not in [`KINDS`] or
    /// whose entry message is not `M` fails the build:
    ///
    /// ```
    /// use criu::images::{kind::Kind, pb::CoreEntry};
    /// const K: Kind<CoreEntry> = Kind::new("CORE");
    /// ```
    ///
    /// ```compile_fail,E0080
    /// use criu::images::{kind::Kind, pb::CoreEntry};
    /// const K: Kind<CoreEntry> = Kind::new("MM");
    /// ```
    pub const fn new(name: &str) -> Self {
        match typed_row(name, M::NAME) {
            Ok(row) => Kind { row, entry: PhantomData },
            Err(why) => panic!("{}", why),
        }
    }
}

impl<M> Kind<M> {
    /// The table row.
    pub const fn row(self) -> &'static ImageKind {
        self.row
    }
}

impl<M> Clone for Kind<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for Kind<M> {}

impl<M> std::fmt::Debug for Kind<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Kind").field(&self.row.name).finish()
    }
}

impl<M> std::ops::Deref for Kind<M> {
    type Target = ImageKind;

    fn deref(&self) -> &ImageKind {
        self.row
    }
}

/// Every kind of [`KINDS`] with its entry type, named as crit names it
/// (`CORE` → `core()`). Each is checked against the table at build time.
pub mod kinds {
    use super::Kind;
    use crate::images::pb;

    macro_rules! kinds {
        ($($f:ident: $m:ident = $n:literal,)*) => {
            $(
                #[doc = concat!("`", $n, "` images, of `", stringify!($m), "` entries.")]
                pub const fn $f() -> Kind<pb::$m> {
                    const K: Kind<pb::$m> = Kind::new($n);
                    K
                }
            )*

            /// Each typed kind's row and its entry type's protobuf name and
            /// full name, for the tests.
            #[cfg(test)]
            pub(super) fn all() -> Vec<(&'static super::ImageKind, &'static str, String)> {
                vec![$(($f().row(), <pb::$m as prost::Name>::NAME, <pb::$m as prost::Name>::full_name()),)*]
            }
        };
    }

    kinds! {
        inventory: InventoryEntry = "INVENTORY",
        pstree: PstreeEntry = "PSTREE",
        fdinfo: FdinfoEntry = "FDINFO",
        pagemap: PagemapEntry = "PAGEMAP",
        core: CoreEntry = "CORE",
        ids: TaskKobjIdsEntry = "IDS",
        vmas: VmaEntry = "VMAS",
        pipes: PipeEntry = "PIPES",
        pipes_data: PipeDataEntry = "PIPES_DATA",
        fifo: FifoEntry = "FIFO",
        fifo_data: PipeDataEntry = "FIFO_DATA",
        sigact: SaEntry = "SIGACT",
        unixsk: UnixSkEntry = "UNIXSK",
        inetsk: InetSkEntry = "INETSK",
        packetsk: PacketSockEntry = "PACKETSK",
        itimers: ItimerEntry = "ITIMERS",
        posix_timers: PosixTimerEntry = "POSIX_TIMERS",
        sk_queues: SkPacketEntry = "SK_QUEUES",
        utsns: UtsnsEntry = "UTSNS",
        creds: CredsEntry = "CREDS",
        ipc_var: IpcVarEntry = "IPC_VAR",
        ipcns_shm: IpcShmEntry = "IPCNS_SHM",
        ipcns_msg: IpcMsgEntry = "IPCNS_MSG",
        ipcns_sem: IpcSemEntry = "IPCNS_SEM",
        reg_files: RegFileEntry = "REG_FILES",
        ext_files: ExtFileEntry = "EXT_FILES",
        fs: FsEntry = "FS",
        mm: MmEntry = "MM",
        remap_fpath: RemapFilePathEntry = "REMAP_FPATH",
        ghost_file: GhostFileEntry = "GHOST_FILE",
        tcp_stream: TcpStreamEntry = "TCP_STREAM",
        eventfd_file: EventfdFileEntry = "EVENTFD_FILE",
        eventpoll_file: EventpollFileEntry = "EVENTPOLL_FILE",
        eventpoll_tfd: EventpollTfdEntry = "EVENTPOLL_TFD",
        signalfd: SignalfdEntry = "SIGNALFD",
        inotify_file: InotifyFileEntry = "INOTIFY_FILE",
        inotify_wd: InotifyWdEntry = "INOTIFY_WD",
        mnts: MntEntry = "MNTS",
        netdev: NetDeviceEntry = "NETDEV",
        netns: NetnsEntry = "NETNS",
        tty_files: TtyFileEntry = "TTY_FILES",
        tty_info: TtyInfoEntry = "TTY_INFO",
        tty_data: TtyDataEntry = "TTY_DATA",
        file_locks: FileLockEntry = "FILE_LOCKS",
        rlimit: RlimitEntry = "RLIMIT",
        fanotify_file: FanotifyFileEntry = "FANOTIFY_FILE",
        fanotify_mark: FanotifyMarkEntry = "FANOTIFY_MARK",
        signal: SiginfoEntry = "SIGNAL",
        netlink_sk: NetlinkSkEntry = "NETLINK_SK",
        ns_files: NsFileEntry = "NS_FILES",
        tunfile: TunfileEntry = "TUNFILE",
        cgroup: CgroupEntry = "CGROUP",
        timerfd: TimerfdEntry = "TIMERFD",
        cpuinfo: CpuinfoEntry = "CPUINFO",
        userns: UsernsEntry = "USERNS",
        seccomp: SeccompEntry = "SECCOMP",
        binfmt_misc: BinfmtMiscEntry = "BINFMT_MISC",
        autofs: AutofsEntry = "AUTOFS",
        files: FileEntry = "FILES",
        memfd_inode: MemfdInodeEntry = "MEMFD_INODE",
        timens: TimensEntry = "TIMENS",
        pidns: PidnsEntry = "PIDNS",
        bpfmap_file: BpfmapFileEntry = "BPFMAP_FILE",
        bpfmap_data: BpfmapDataEntry = "BPFMAP_DATA",
        apparmor: ApparmorEntry = "APPARMOR",
        pidfd: PidfdEntry = "PIDFD",
        stats: StatsEntry = "STATS",
        irmap_cache: IrmapCacheEntry = "IRMAP_CACHE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn magics_are_unique() {
        let mut seen = HashSet::new();
        for k in KINDS {
            assert!(seen.insert(k.magic), "duplicate magic of {}", k.name);
        }
    }

    #[test]
    fn file_names() {
        assert_eq!(kinds::core().file_name(30001), "core-30001.img");
        assert_eq!(kinds::ghost_file().file_name(255), "ghost-file-ff.img");
        assert_eq!(kinds::stats().file_name_str("dump"), "stats-dump");
    }

    #[test]
    fn every_row_has_one_typed_kind_whose_type_is_its_entry() {
        let typed = kinds::all();
        for (row, name, full_name) in &typed {
            assert_eq!(by_name(row.name), Some(*row), "{}: not the table's row", row.name);
            assert_eq!(by_magic(row.magic), Some(*row), "{}: its magic finds another row", row.name);
            assert_eq!(row.entry, *name, "{}: entries are {}, the type is {name}", row.name, row.entry);
            // The prost type is the schema message crit decodes the kind with.
            let desc = crate::crit::message(full_name).unwrap_or_else(|| panic!("{}: no schema {full_name}", row.name));
            assert_eq!(desc.name(), row.entry, "{}", row.name);
        }
        for row in KINDS {
            let n = typed.iter().filter(|(t, ..)| t.name == row.name).count();
            assert_eq!(n, 1, "{}: {n} typed kinds in kinds::", row.name);
        }
    }

    #[test]
    fn typed_row_refuses_unknown_names_and_other_messages() {
        assert_eq!(typed_row("CORE", "core_entry"), Ok(kinds::core().row()));
        assert!(typed_row("CORE", "mm_entry").unwrap_err().contains("another message"));
        assert!(typed_row("CORES", "core_entry").unwrap_err().contains("no image kind"));
        // Same entry message, two kinds: each keeps its own row.
        assert_eq!(typed_row("FIFO_DATA", "pipe_data_entry").map(|r| r.magic), Ok(0x5933_3054));
        assert_eq!(kinds::pipes_data().magic, 0x5645_3709);
    }
}
