//! Ghost files: a task holding open (and mapping) files it unlinked is
//! dumped with their contents (remap-fpath.img + ghost-file-N.img, in
//! CRIU's format) and restored with the same contents, offsets and link
//! names, unlinked again (O_TMPFILE files too); --ghost-limit bounds
//! what is carried.

mod common;

use common::*;

fn script(dir: &std::path::Path, ready: &std::path::Path, out: &std::path::Path) -> String {
    format!(
        r#"import os,mmap,signal,time,tempfile
t=tempfile.TemporaryFile(dir='{dir}')
t.write(b'anonymous tmp'); t.flush()
p='{dir}/held'; m='{dir}/mapped'
open(p,'w').write('hello ghost')
open(m,'wb').write(b'M'*5000+b'tail')
fd=os.open(p,os.O_RDWR)
assert fd==4
os.lseek(fd,6,0)
mf=open(m,'rb'); mm=mmap.mmap(mf.fileno(),0,prot=mmap.PROT_READ); mf.close()
os.unlink(p); os.unlink(m)
def h(*x):
    t.seek(0)
    r=[os.read(4,100).decode(), os.readlink('/proc/self/fd/4'), str(os.fstat(4).st_nlink), mm[4998:5004].decode(), str(os.path.exists(p)), t.read().decode()]
    open('{out}','w').write('|'.join(r))
signal.signal(signal.SIGUSR1,h)
open('{ready}','w').close()
while True: time.sleep(1)
"#,
        dir = dir.display(),
        out = out.display(),
        ready = ready.display()
    )
}

#[test]
fn unlinked_files_come_back_with_contents_offsets_and_names() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    let out = tmp.path().join("out");
    let mut t = Target::spawn(py, &["-c", &script(tmp.path(), &ready, &out)], Some(&ready));
    let pid = t.pid();
    let imgs = dump_killed(&mut t, tmp.path());

    let remaps = crit(&imgs.join("remap-fpath.img"));
    let entries = remaps["entries"].as_array().unwrap();
    // The O_TMPFILE file, the mapping, fd 4, and the fd python's mmap
    // keeps of the mapped file: four users, three inodes, three ghosts.
    assert_eq!(entries.len(), 4, "{remaps}");
    assert!(entries.iter().all(|e| e["remap_type"] == "GHOST"), "{remaps}");
    let mut ids: Vec<u64> = entries.iter().map(|e| e["remap_id"].as_u64().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids, [1, 2, 3], "{remaps}");
    assert!(!imgs.join("ghost-file-4.img").exists());
    let ghost = crit(&imgs.join("ghost-file-1.img"));
    assert_eq!(ghost["magic"], "GHOST_FILE");
    if std::path::Path::new("/usr/bin/crit").exists() {
        for img in ["remap-fpath.img", "ghost-file-1.img", "ghost-file-2.img", "ghost-file-3.img"] {
            let deb = std::process::Command::new("/usr/bin/crit").args(["decode", "-i"]).arg(imgs.join(img)).output().unwrap();
            assert!(deb.status.success(), "CRIU's crit on {img}: {}", text(&deb.stderr));
        }
    }

    restore_detached(&imgs);
    let held = tmp.path().join("held");
    assert!(!held.exists(), "the recreated ghost is unlinked again");
    let want = format!("ghost|{} (deleted)|0|MMtail|False|anonymous tmp", held.display());
    assert_eq!(ask(pid, &out), want);
    kill_and_reap(pid);
}

#[test]
fn ghosts_over_the_limit_are_refused_by_name() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    let out = tmp.path().join("out");
    let t = Target::spawn(py, &["-c", &script(tmp.path(), &ready, &out)], Some(&ready));
    let err = dump_refused(t.pid(), &tmp.path().join("imgs"), &["--ghost-limit", "4K"]);
    // The limit counts the blocks in use (as CRIU 4.2's st_blocks check).
    assert!(
        err.contains(&format!("ghost file {}/mapped of ", tmp.path().display()))
            && err.contains("bytes in use (5004 bytes long)")
            && err.contains("--ghost-limit"),
        "{err}"
    );
}

#[test]
fn memfds_are_dumped_as_memfds_not_taken_for_ghosts() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    let script = format!("import os,time\nfd=os.memfd_create('zz')\nopen('{}','w').close()\nwhile True: time.sleep(1)", ready.display());
    let mut t = Target::spawn(py, &["-c", &script], Some(&ready));
    let imgs = dump_killed(&mut t, tmp.path());
    assert!(!imgs.join("remap-fpath.img").exists(), "a memfd is no ghost");
    let files = crit(&imgs.join("files.img"));
    assert!(files["entries"].as_array().unwrap().iter().any(|e| e["type"] == "MEMFD"), "{files}");
    let inodes = crit(&imgs.join("memfd.img"));
    assert_eq!(inodes["entries"][0]["name"], "zz", "{inodes}");
}
