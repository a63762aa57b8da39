//! Round trip of an ipc namespace: objects made in one new namespace,
//! dumped, made again from the images in a second new namespace and
//! dumped again: the two sets of images are the same bytes.

use std::path::PathBuf;

use super::Ipc;
use crate::images::ImageDir;
use crate::ns::kind::NsKind;
use crate::sys::sysvipc;

/// Run `f` on a thread of its own in a new ipc namespace (None: the
/// kernel refused one here, the test is skipped).
fn in_new_ipcns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    std::thread::spawn(move || {
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWIPC) {
            eprintln!("skipped: unshare(CLONE_NEWIPC): {e}");
            return None;
        }
        Some(f())
    })
    .join()
    .expect("the helper thread")
}

fn files(p: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn objects_round_trip() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let (p1, p2): (PathBuf, PathBuf) = (d1.path().into(), d2.path().into());
    let made = in_new_ipcns(move || {
        std::fs::write("/proc/sys/kernel/msgmax", "5000").unwrap();
        std::fs::write("/proc/sys/kernel/msg_next_id", "42").unwrap();
        let q = sysvipc::msg_get(0x1234, 0o640).unwrap();
        assert_eq!(q, 42);
        for (t, m) in [(2i64, &b"two"[..]), (1, b""), (5, &[7u8; 300][..])] {
            sysvipc::msg_send(q, t, m).unwrap();
        }
        let s = sysvipc::sem_get(0x4321, 2, 0o600).unwrap();
        sysvipc::sem_setall(s, &[3, 9]).unwrap();
        let m = sysvipc::shm_get(0x5555, 5000, 0o644).unwrap();
        {
            let a = sysvipc::ShmAttach::new(m, false).unwrap();
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(format!("/proc/self/map_files/{:x}-{:x}", a.addr, a.addr + 8192))
                .unwrap();
            std::os::unix::fs::FileExt::write_all_at(&f, b"contents", 4096 + 7).unwrap();
        }
        let mut pages = 1;
        Ipc.dump(&ImageDir::open(&p1).unwrap(), 9, &mut pages).unwrap();
        assert_eq!(pages, 2, "one pages file for the segment");
        // The queue is left as it was (MSG_COPY).
        assert_eq!(sysvipc::msg_stat(sysvipc::msg_max_index().unwrap()).unwrap().unwrap().qnum, 3);
    });
    if made.is_none() {
        return;
    }
    let p1b = d1.path().to_path_buf();
    in_new_ipcns(move || {
        Ipc.prepare(&ImageDir::open(&p1b).unwrap(), 9).unwrap();
        let mut pages = 1;
        Ipc.dump(&ImageDir::open(&p2).unwrap(), 9, &mut pages).unwrap();
    })
    .expect("a second namespace");
    let (a, b) = (files(d1.path()), files(d2.path()));
    let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ipcns-msg-9.img", "ipcns-sem-9.img", "ipcns-shm-9.img", "ipcns-var-9.img", "pagemap-shmem-0.img", "pages-1.img"]);
    assert_eq!(a, b);
}
