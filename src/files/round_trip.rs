//! The round trip every file kind's test runs (Firecracker's save/restore
//! pair check): fds of this very process are dumped through the kinds into
//! an image directory, the images are read back and the descriptions
//! opened again, and those are dumped once more, so a kind's test compares
//! its record (and side data) before and after.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::fds::{self, Fds};
use super::restore;
use super::FileTable;
use crate::images::pb::FileEntry;
use crate::images::ImageDir;

/// One side of the trip: the fds' records (in the fds' order) and what the
/// kinds gathered.
pub struct Dumped {
    pub entries: Vec<FileEntry>,
    pub fds: Fds,
}

/// Dump `list` (fds of ours): the fd table's entries, what the kinds
/// gathered, and the file table.
fn dump_all(list: &[RawFd]) -> (Vec<crate::images::pb::FdinfoEntry>, Fds, FileTable) {
    let me = std::process::id() as i32;
    let stat = crate::proc::stat::read(me).expect("our stat");
    let (mut out, mut files) = (Fds::default(), FileTable::new());
    let infos = fds::dump_fds(me, list, &mut out, &mut files, &stat, false).expect("dumping our fds");
    fds::dumped_all(&mut out, &mut files, &format!("the test, task {me}")).expect("the kinds' last readings");
    (infos, out, files)
}

fn records(infos: &[crate::images::pb::FdinfoEntry], files: &FileTable) -> Vec<FileEntry> {
    infos.iter().map(|fi| files.entries().iter().find(|e| e.id == fi.id).cloned().expect("a record per fd")).collect()
}

/// Dump `list` (fds of ours).
pub fn dump(list: &[RawFd]) -> Dumped {
    let (infos, fds, files) = dump_all(list);
    Dumped { entries: records(&infos, &files), fds }
}

/// Dump `list`, write the images, read them back and open the
/// descriptions again (each fd of `list` must be a description of its
/// own): (before, the restored fds in `list`'s order, after).
pub fn run(list: &[RawFd]) -> (Dumped, Vec<OwnedFd>, Dumped) {
    run_with(list, || {})
}

/// [`run`], with `between` run after the dump and before the restore (to
/// close the originals, as a dump that kills its task does).
pub fn run_with(list: &[RawFd], between: impl FnOnce()) -> (Dumped, Vec<OwnedFd>, Dumped) {
    let me = std::process::id() as i32;
    let (infos, out, files) = dump_all(list);
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = ImageDir::open(tmp.path()).expect("the images dir");
    files.write(&dir).expect("writing files.img");
    files.memfds.dump_contents(&dir, &mut 1, &mut Vec::new()).expect("writing memfd contents");
    fds::write_images(&out, &dir).expect("writing side images");
    let before = Dumped { entries: records(&infos, &files), fds: out };
    between();

    let mut imgs = super::Images::load(&dir).expect("reading the images back");
    imgs.prepare(&dir).expect("preparing");
    let mut opened = restore::open(&infos, &imgs, &[], false, &[me]).expect("opening the files again");
    opened.open_deferred(&infos, &imgs).expect("opening what the kinds left for the task");
    let back: Vec<OwnedFd> = infos.iter().map(|fi| opened.take(fi.id).expect("an fd per record")).collect();
    let raw: Vec<RawFd> = back.iter().map(|f| f.as_raw_fd()).collect();
    let after = dump(&raw);
    imgs.settle();
    (before, back, after)
}
