//! `criu restore`: CRIU's stages for one task — read and check the images
//! (files unchanged, pid and thread ids free), fork with the exact pid
//! (clone3 set_tid), and in the child: session, memory premapped and
//! filled, rlimits, fds, cwd/root/umask; then the restorer blob puts memory
//! in place, creates the other threads with their tids, restores the rest
//! of the task's and each thread's state and jumps into the saved
//! registers (every thread from its own frame).
//!
//! The child dies with criu until the very end (PR_SET_PDEATHSIG), and
//! reports through a pipe: an error text from the Rust side, or the
//! restorer's status word; EOF without either means it died.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use tracing::info;

use crate::files::restore as fd_restore;
use crate::images::kind::kinds;
use crate::images::pb::{
    CoreEntry, FdinfoEntry, FileEntry, FsEntry, MmEntry, PipeDataEntry, PstreeEntry, RegFileEntry, TaskKobjIdsEntry,
};
use crate::images::{inventory, ImageDir, ImageReader};
use crate::mem::premap;
use crate::opts::Opts;
use crate::restorer::plan::{MmMap, Plan};
use crate::sys::clone::{fork_with_pid, Forked};

/// The images of one task, read and checked before anything is created.
pub struct TaskImages {
    pub pstree: PstreeEntry,
    pub core: CoreEntry,
    /// The other threads' cores, in pstree order.
    pub threads: Vec<(i32, CoreEntry)>,
    pub ids: TaskKobjIdsEntry,
    pub mm: MmEntry,
    pub fs: FsEntry,
    pub files: HashMap<u32, FileEntry>,
    pub fdinfo: Vec<FdinfoEntry>,
    /// pipe_id -> (buffer size, data)
    pub pipe_data: HashMap<u32, (u32, Vec<u8>)>,
    /// socket file id -> messages queued for it to read
    pub sk_queues: HashMap<u32, Vec<Vec<u8>>>,
}

fn one<M: prost::Message + Default>(dir: &ImageDir, name: &str, kind: &'static crate::images::ImageKind) -> Result<M> {
    Ok(ImageReader::open_kind(dir, name, kind)?.expect()?)
}

impl TaskImages {
    pub fn load(dir: &ImageDir) -> Result<TaskImages> {
        let inv = inventory::read(dir)?;
        if inv.img_version != crate::images::kind::CRTOOLS_IMAGES_V1_1 {
            bail!("inventory.img: images version {} is not supported (want 2)", inv.img_version);
        }
        let mut r = ImageReader::open_kind(dir, "pstree.img", kinds::pstree())?;
        let items: Vec<PstreeEntry> = r.all()?;
        let pstree = match items.as_slice() {
            [one] => one.clone(),
            [] => bail!("pstree.img is empty"),
            many => bail!("pstree.img holds {} tasks: restoring process trees is not supported yet", many.len()),
        };
        let pid = pstree.pid;
        let core: CoreEntry = one(dir, &kinds::core().file_name(u64::from(pid)), kinds::core())?;
        if core.mtype != crate::images::pb::core_entry::March::X8664 as i32 || core.thread_info.is_none() {
            bail!("core-{pid}.img is not an x86_64 task: restoring other architectures is not supported here");
        }
        if !pstree.threads.is_empty() && pstree.threads.first() != Some(&pid) {
            bail!("pstree.img: the threads of task {pid} do not start with its leader ({:?})", pstree.threads);
        }
        let mut threads = Vec::new();
        for &tid in pstree.threads.iter().skip(1) {
            let t: CoreEntry = one(dir, &kinds::core().file_name(u64::from(tid)), kinds::core())?;
            if t.mtype != core.mtype || t.thread_info.is_none() || t.thread_core.is_none() {
                bail!("core-{tid}.img (thread {tid} of task {pid}) has no x86_64 registers or thread core");
            }
            threads.push((tid as i32, t));
        }
        let ids: TaskKobjIdsEntry = one(dir, &kinds::ids().file_name(u64::from(pid)), kinds::ids())?;
        let mm: MmEntry = one(dir, &kinds::mm().file_name(u64::from(pid)), kinds::mm())?;
        let fs: FsEntry = one(dir, &kinds::fs().file_name(u64::from(pid)), kinds::fs())?;
        let files: HashMap<u32, FileEntry> =
            ImageReader::open_kind(dir, "files.img", kinds::files())?.all::<FileEntry>()?.into_iter().map(|f| (f.id, f)).collect();
        let fdinfo: Vec<FdinfoEntry> =
            ImageReader::open_kind(dir, &kinds::fdinfo().file_name(u64::from(ids.files_id)), kinds::fdinfo())?.all()?;
        let mut pipe_data = HashMap::new();
        if dir.exists("pipes-data.img") {
            let mut r = ImageReader::open_kind(dir, "pipes-data.img", kinds::pipes_data())?;
            while let Some(e) = r.next::<PipeDataEntry>()? {
                let data = r.payload(u64::from(e.bytes))?;
                pipe_data.insert(e.pipe_id, (e.size.unwrap_or(0), data));
            }
        }
        let mut sk_queues: HashMap<u32, Vec<Vec<u8>>> = HashMap::new();
        if dir.exists("sk-queues.img") {
            let kind = crate::images::kind::by_name("SK_QUEUES").context("SK_QUEUES kind")?;
            let mut r = ImageReader::open_kind(dir, "sk-queues.img", kind)?;
            while let Some(e) = r.next::<crate::images::pb::SkPacketEntry>()? {
                let data = r.payload(u64::from(e.length))?;
                sk_queues.entry(e.id_for).or_default().push(data);
            }
        }
        Ok(TaskImages { pstree, core, threads, ids, mm, fs, files, fdinfo, pipe_data, sk_queues })
    }

    pub fn pid(&self) -> i32 {
        self.pstree.pid as i32
    }

    fn reg(&self, id: u32) -> Result<&RegFileEntry> {
        self.files.get(&id).and_then(|f| f.reg.as_ref()).with_context(|| format!("file id {id} is not a regular file in files.img"))
    }

    fn regs_by_id(&self) -> HashMap<u32, RegFileEntry> {
        self.files.iter().filter_map(|(id, f)| f.reg.clone().map(|r| (*id, r))).collect()
    }

    /// Check every regular file the task uses still matches its record
    /// (but those replaced by --inherit-fd).
    fn check_files(&self, inherit: &[String]) -> Result<()> {
        let inherited: Vec<&str> = inherit.iter().filter_map(|v| crate::opts::parse_inherit_fd(v).map(|(_, r)| r)).collect();
        // A terminal's path record: the terminal comes from criu (--shell-job).
        let tty_paths: Vec<u32> = self.files.values().filter_map(|f| f.tty.as_ref()?.regf_id).collect();
        for (id, f) in &self.files {
            if tty_paths.contains(id) {
                continue;
            }
            if let Some(r) = &f.reg {
                if inherited.iter().any(|k| *k == r.name || *k == r.name.trim_start_matches('/')) {
                    continue;
                }
                let file = File::open(&r.name).with_context(|| format!("file {} (id {id}) of the image is gone", r.name))?;
                crate::files::reg::validate(r, &file)?;
            }
        }
        Ok(())
    }
}

/// What the parent hears from the child.
enum Report {
    /// Running.
    Ready,
    /// Restored but held until criu's go-ahead.
    Held,
    Failed(String),
}

/// Read the next report: an error text from the restoring process (`E...`
/// then EOF), or a report word of the restorer or its cleaner.
/// `tids`: the task's threads as pstree.img lists them (a failing thread
/// is named by its place there).
fn read_report(r: &mut File, tids: &[u32]) -> Report {
    let mut first = [0u8; 1];
    if r.read_exact(&mut first).is_err() {
        return Report::Failed("the restoring process died before the task was ready".into());
    }
    if first[0] == b'E' {
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        return Report::Failed(String::from_utf8_lossy(&rest).into_owned());
    }
    let mut buf = [0u8; 8];
    buf[0] = first[0];
    match r.read_exact(&mut buf[1..]) {
        Ok(()) => {
            let code = i64::from_le_bytes(buf);
            if code == crate::restorer::plan::HELD as i64 {
                Report::Held
            } else if code == 0 {
                Report::Ready
            } else {
                let shift = crate::restorer::proto::step::THREAD_SHIFT;
                let step = (code as u64 >> 32) & ((1 << (shift - 32)) - 1);
                let thread = code as u64 >> shift;
                let who = match tids.get(thread as usize) {
                    _ if thread == 0 => String::new(),
                    Some(tid) => format!(" in thread {tid}"),
                    None => format!(" in thread #{thread}"),
                };
                Report::Failed(format!(
                    "the restorer failed at step {step} ({}){who} with {}",
                    crate::restorer::step_name(step),
                    nix::errno::Errno::from_raw(-(code as i32))
                ))
            }
        }
        Err(_) => Report::Failed("the restoring process died before the task was ready".into()),
    }
}

/// Run `criu restore`.
pub fn run(opts: &Opts) -> Result<i32> {
    let t0 = Instant::now();
    if opts.display_stats {
        bail!("option --display-stats is not supported yet for restore");
    }
    if opts.final_state == crate::opts::FinalState::Stopped {
        bail!("option --leave-stopped is not supported yet for restore");
    }
    let dir = ImageDir::open(opts.imgs_dir.as_deref().unwrap_or(std::path::Path::new(".")))?;
    crate::scripts::run(crate::scripts::Action::PreRestore, opts, Some(&dir), None)?;
    let imgs = TaskImages::load(&dir)?;
    let pid = imgs.pid();
    info!("Restoring task {pid}");
    imgs.check_files(&opts.inherit_fds)?;
    if std::path::Path::new(&format!("/proc/{pid}")).exists() {
        bail!("pid {pid} is taken: can't restore task {pid} (a process with that pid is running)");
    }
    for (tid, _) in &imgs.threads {
        if std::path::Path::new(&format!("/proc/{tid}")).exists() {
            bail!("pid {tid} is taken: can't restore thread {tid} of task {pid} (a task with that id is running)");
        }
    }
    if !imgs.threads.is_empty() {
        info!("task {pid} has {} threads", imgs.threads.len() + 1);
    }
    let sid = imgs.pstree.sid as i32;
    if sid != pid && !opts.shell_job {
        bail!("task {pid} is not a session leader (session {sid}): restore it with --shell-job");
    }

    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2")?;
    let (go_r, go_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2")?;
    let flags = if opts.restore_sibling { libc::CLONE_PARENT as u64 } else { 0 };
    match fork_with_pid(pid, flags) {
        Err(nix::errno::Errno::EEXIST) => bail!("pid {pid} is taken: can't restore task {pid}"),
        Err(e) => bail!("clone3 with pid {pid}: {e}"),
        Ok(Forked::Child) => {
            drop(ready_r);
            drop(go_w);
            // Only errors come back here; report them to the parent.
            let (err, ready) = child(&imgs, &dir, opts, ready_w, go_r);
            let _ = File::from(ready).write_all(format!("E{err:#}").as_bytes());
            std::process::exit(1);
        }
        Ok(Forked::Parent(child_pid)) => {
            drop(ready_w);
            drop(go_r);
            crate::scripts::setup_namespaces(opts, &dir, pid)?;
            let mut ready = File::from(ready_r);
            let fail = |msg: String| -> anyhow::Error {
                let _ = nix::sys::signal::kill(child_pid, nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(child_pid, None);
                anyhow::anyhow!("restore of task {pid} failed: {msg}")
            };
            match read_report(&mut ready, &imgs.pstree.threads) {
                Report::Held => {
                    // Everything is in place and the task has not run yet:
                    // a failing script here undoes the restore. (The go pipe
                    // closes first: the cleaner, which traces the task, must
                    // let go of it before we can reap it.)
                    for action in [crate::scripts::Action::PostRestore, crate::scripts::Action::PreResume] {
                        if let Err(e) = crate::scripts::run(action, opts, Some(&dir), Some(pid)) {
                            drop(go_w);
                            let _ = fail(String::new());
                            return Err(e.context(format!("restore aborted at {action}; task {pid} was killed")));
                        }
                    }
                    let _ = File::from(go_w).write_all(b"g");
                    match read_report(&mut ready, &imgs.pstree.threads) {
                        Report::Ready => {}
                        Report::Held => return Err(fail("the cleaner reported twice".into())),
                        Report::Failed(msg) => return Err(fail(msg)),
                    }
                }
                Report::Ready => {
                    // No cleaner could hold the task: it runs already.
                    drop(go_w);
                    crate::scripts::run_or_kill(crate::scripts::Action::PostRestore, opts, &dir, pid)?;
                    crate::scripts::run_logged(crate::scripts::Action::PreResume, opts, &dir, pid);
                }
                Report::Failed(msg) => return Err(fail(msg)),
            }
            info!("Restore finished successfully ({} us)", t0.elapsed().as_micros());
            crate::scripts::run_logged(crate::scripts::Action::PostResume, opts, &dir, pid);
            if let Some(pf) = &opts.pidfile {
                std::fs::write(pf, format!("{pid}")).with_context(|| format!("writing pidfile {}", pf.display()))?;
            }
            if opts.restore_detach || opts.restore_sibling {
                return Ok(0);
            }
            match waitpid(child_pid, None).context("waiting for the restored task")? {
                WaitStatus::Exited(_, code) => Ok(code),
                WaitStatus::Signaled(_, sig, _) => Ok(128 + sig as i32),
                other => bail!("restored task {pid}: {other:?}"),
            }
        }
    }
}

/// The child: become the task. Returns only on error, with the fd to
/// report it through.
fn child(imgs: &TaskImages, dir: &ImageDir, opts: &Opts, ready_w: OwnedFd, go_r: OwnedFd) -> (anyhow::Error, OwnedFd) {
    let mut ready = Some(ready_w);
    match prepare(imgs, dir, opts, &mut ready, go_r) {
        Ok(plan) => crate::restorer::jump(plan),
        Err(e) => (e, ready.take().expect("the ready fd is kept until the plan is built")),
    }
}

/// A thread's scheduling from its core (None when the image has none).
fn sched_of(thc: &crate::images::pb::ThreadCoreEntry) -> Option<crate::restorer::plan::Sched> {
    let (nice, policy) = (thc.sched_nice?, thc.sched_policy?);
    Some(crate::restorer::plan::Sched { nice, policy, prio: thc.sched_prio.unwrap_or(0) })
}

/// What the restorer needs of a thread but the leader.
fn thread_plan(tid: i32, core: &CoreEntry) -> Result<crate::restorer::plan::ThreadPlan> {
    let ti = core.thread_info.as_ref().with_context(|| format!("core-{tid}.img has no registers"))?;
    let thc = core.thread_core.as_ref().with_context(|| format!("core-{tid}.img has no thread core"))?;
    Ok(crate::restorer::plan::ThreadPlan {
        tid,
        regs: crate::task::thread_info::regs_from_image(&ti.gpregs),
        fpu: crate::task::thread_info::fpu_from_image(&ti.fpregs),
        sigmask: thc.blk_sigset.unwrap_or(0),
        sigaltstack: thc.sas,
        clear_tid_addr: ti.clear_tid_addr,
        rseq: thc.rseq_entry,
        robust_list: (thc.futex_rla, thc.futex_rla_len),
        comm: thc.comm.clone(),
        creds: thc.creds.clone(),
        pdeath_sig: thc.pdeath_sig.unwrap_or(0),
        sched: sched_of(thc),
        pending: thc.signals_p.as_ref().map(|q| q.signals.iter().map(|s| s.siginfo.clone()).collect()).unwrap_or_default(),
    })
}

/// Everything before the restorer: returns the plan, with the ready fd
/// moved into it.
fn prepare(imgs: &TaskImages, dir: &ImageDir, opts: &Opts, ready_w: &mut Option<OwnedFd>, go_r: OwnedFd) -> Result<Plan> {
    if opts.log_file_per_pid {
        // --log-pid: this restoring process logs to LOG.PID from here on.
        crate::log::reopen_for_pid(imgs.pid()).context("--log-pid")?;
    }
    let pid = imgs.pid();
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).context("PR_SET_PDEATHSIG")?;
    if imgs.pstree.sid as i32 == pid {
        nix::unistd::setsid().context("setsid")?;
    } else if imgs.pstree.pgid as i32 == pid {
        nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0)).context("setpgid")?;
    }
    let core = &imgs.core;
    let tc = core.tc.as_ref().context("core image has no task core")?;
    let thc = core.thread_core.as_ref().context("core image has no thread core")?;
    let ti = core.thread_info.as_ref().context("core image has no registers")?;

    // The task's name (per thread; ours is "criu" until now).
    let comm = thc.comm.as_deref().unwrap_or(tc.comm.as_str());
    nix::sys::prctl::set_name(&std::ffi::CString::new(comm).context("comm with a NUL byte")?).context("PR_SET_NAME")?;

    // Memory: premapped and filled while criu's own mappings still exist.
    let own = crate::proc::maps::read(std::process::id() as i32)?;
    let mem = premap::premap(&imgs.mm, &imgs.regs_by_id(), dir, pid as u64, &own, &[])?;

    // Limits: lowering always works; raising a hard limit needs
    // CAP_SYS_RESOURCE, which this machine may lack: say so, go on.
    if let Some(rl) = &tc.rlimits {
        for (res, l) in rl.rlimits.iter().enumerate() {
            let lim = libc::rlimit { rlim_cur: l.cur, rlim_max: l.max };
            if let Err(e) = crate::sys::rlimit::set(res as u32, &lim) {
                tracing::warn!("can't set rlimit {res} to {}/{} for task {pid}: {e}", l.cur, l.max);
            }
        }
    }

    // The executable for PR_SET_MM_MAP.
    let exe = imgs.reg(imgs.mm.exe_file_id)?;
    let exe_file = File::open(&exe.name).with_context(|| format!("can't open the executable {}", exe.name))?;
    crate::files::reg::validate(exe, &exe_file)?;

    // cwd, root, umask.
    let cwd = imgs.reg(imgs.fs.cwd_id)?;
    let root = imgs.reg(imgs.fs.root_id)?;
    if root.name != "/" {
        nix::unistd::chroot(root.name.as_str()).with_context(|| format!("chroot {}", root.name))?;
    }
    nix::unistd::chdir(cwd.name.as_str()).with_context(|| format!("chdir {}", cwd.name))?;
    if let Some(u) = imgs.fs.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(u));
    }

    // Files.
    let inherit: Vec<(i32, String)> = opts
        .inherit_fds
        .iter()
        .filter_map(|v| crate::opts::parse_inherit_fd(v).map(|(n, r)| (n, r.to_string())))
        .collect();
    let opened = fd_restore::open(&imgs.fdinfo, &imgs.files, &imgs.pipe_data, &imgs.sk_queues, &inherit, opts.shell_job)?;
    let mut pending: Vec<(bool, Vec<u8>)> = Vec::new();
    if let Some(q) = &tc.signals_s {
        pending.extend(q.signals.iter().map(|s| (true, s.siginfo.clone())));
    }
    if let Some(q) = &thc.signals_p {
        pending.extend(q.signals.iter().map(|s| (false, s.siginfo.clone())));
    }

    // Service fds go above the task's fds; then the task's fd table.
    let top = imgs.fdinfo.iter().map(|f| f.fd as i32).max().unwrap_or(2).max(2) + 1;
    let base = top.max(100);
    let mut keep = Vec::new();
    let mut lift = |fd: &OwnedFd| -> Result<OwnedFd> {
        let n = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(base)).context("F_DUPFD_CLOEXEC")?;
        keep.push(n);
        Ok(crate::sys::fd::owned(n))
    };
    // The ready fd moves up (errors are still reported through it).
    let lifted = lift(ready_w.as_ref().context("ready fd")?)?;
    *ready_w = Some(lifted);
    let exe_fd = lift(&OwnedFd::from(exe_file))?;
    let go_fd = lift(&go_r)?;
    drop(go_r);
    let mut mem = mem;
    for m in &mut mem.file_maps {
        m.fd = lift(&m.fd)?;
    }
    if let Some(l) = crate::log::lift_fd(base)? {
        keep.push(l);
    }
    opened.install(&imgs.fdinfo, &keep)?;
    fd_restore::epoll_targets(&imgs.fdinfo, &imgs.files)?;

    let plan = Plan {
        pid,
        mem,
        mm: MmMap {
            start_code: imgs.mm.mm_start_code,
            end_code: imgs.mm.mm_end_code,
            start_data: imgs.mm.mm_start_data,
            end_data: imgs.mm.mm_end_data,
            start_brk: imgs.mm.mm_start_brk,
            brk: imgs.mm.mm_brk,
            start_stack: imgs.mm.mm_start_stack,
            arg_start: imgs.mm.mm_arg_start,
            arg_end: imgs.mm.mm_arg_end,
            env_start: imgs.mm.mm_env_start,
            env_end: imgs.mm.mm_env_end,
            auxv: imgs.mm.mm_saved_auxv.clone(),
        },
        exe_fd: Some(exe_fd),
        sigactions: tc.sigactions.clone(),
        itimers: tc.timers.clone(),
        sigaltstack: thc.sas,
        clear_tid_addr: ti.clear_tid_addr,
        rseq: thc.rseq_entry,
        personality: tc.personality,
        creds: thc.creds.clone(),
        pdeath_sig: thc.pdeath_sig.unwrap_or(0),
        sched: sched_of(thc),
        threads: imgs.threads.iter().map(|(tid, c)| thread_plan(*tid, c)).collect::<Result<_>>()?,
        dumpable: imgs.mm.dumpable,
        robust_list: (thc.futex_rla, thc.futex_rla_len),
        pending,
        regs: crate::task::thread_info::regs_from_image(&ti.gpregs),
        fpu: crate::task::thread_info::fpu_from_image(&ti.fpregs),
        sigmask: tc.blk_sigset,
        ready_fd: ready_w.take().context("ready fd")?,
        go_fd: Some(go_fd),
    };
    info!("task {pid}: files, memory and state prepared; jumping to the restorer");
    let _ = opts;
    Ok(plan)
}
