//! The request loop of `criu swrk` and of each `criu service` worker
//! (CRIU's cr_service_work): read a `criu_req`, run it, answer with a
//! `criu_resp` of the same type; `keep_open` (VERSION, FEATURE_CHECK)
//! loops for the next request. Failures answer success=false with
//! cr_errno (the errno behind the failure; EBADRQC for a bad or
//! unsupported option, EOPNOTSUPP for a request type we lack) and
//! cr_errmsg, the whole error chain. A malformed, oversized or unknown
//! request is answered too (type EMPTY), then the worker exits 1.

use std::os::fd::OwnedFd;

use anyhow::{Context, Result};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::opts::{self, Mode, Peer};
use super::pb::{CriuDumpResp, CriuFeatures, CriuReq, CriuReqType, CriuResp, CriuRestoreResp, CriuVersion};
use super::wire::{self, RecvError};
use super::{notify, ReqError};
use crate::cli::table::{self, Support};
use crate::images::kind::kinds;
use crate::images::pb::PstreeEntry;
use crate::images::{ImageDir, ImageError, ImageReader};
use crate::ops::auth;
use crate::opts::Opts;

/// Serve requests on `sk` until one fails, the client closes, or a request
/// without keep_open is answered. Returns the exit code.
pub fn serve(base: &Opts, sk: &OwnedFd, peer: Peer) -> i32 {
    let mut served = 0;
    loop {
        let req = match wire::recv_req(sk) {
            Ok(r) => r,
            Err(RecvError::Closed) if served > 0 => return 0,
            Err(e) => {
                tracing::error!("RPC: {e}");
                if matches!(e, RecvError::TooBig(_) | RecvError::Malformed { .. }) {
                    let resp = fail(CriuReqType::Empty, &anyhow::Error::new(ReqError::Bad(e.to_string())));
                    let _ = wire::send_resp(sk, &resp);
                }
                return 1;
            }
        };
        served += 1;
        let ty = CriuReqType::try_from(req.r#type).ok();
        let keep_open = req.keep_open == Some(true);
        let resp = if keep_open && !ty.is_some_and(keep_open_ok) {
            let name = ty.map(|t| t.as_str_name().to_string()).unwrap_or(req.r#type.to_string());
            let e = ReqError::Bad(format!("keep_open is not supported for {name} requests (only VERSION, FEATURE_CHECK, CPUINFO_*, PAGE_SERVER)"));
            fail(ty.unwrap_or(CriuReqType::Empty), &e.into())
        } else {
            handle(base, sk, peer, &req, ty)
        };
        if let Err(e) = wire::send_resp(sk, &resp) {
            tracing::error!("RPC: can't send the response: {e}");
            return 1;
        }
        if !resp.success {
            return 1;
        }
        if !keep_open {
            return 0;
        }
    }
}

/// Answer the first request with `e` (nothing is run); returns the exit code.
pub fn refuse(sk: &OwnedFd, e: anyhow::Error) -> i32 {
    tracing::error!("{e:#}");
    let ty = match wire::recv_req(sk) {
        Ok(req) => CriuReqType::try_from(req.r#type).unwrap_or(CriuReqType::Empty),
        Err(_) => CriuReqType::Empty,
    };
    let _ = wire::send_resp(sk, &fail(ty, &e));
    1
}

/// Requests that may keep the connection open (CRIU's chk_keepopen_req).
fn keep_open_ok(t: CriuReqType) -> bool {
    use CriuReqType::*;
    matches!(t, PageServer | PageServerChld | CpuinfoDump | CpuinfoCheck | FeatureCheck | Version)
}

fn handle(base: &Opts, sk: &OwnedFd, peer: Peer, req: &CriuReq, ty: Option<CriuReqType>) -> CriuResp {
    use CriuReqType::*;
    let Some(ty) = ty else {
        let e = ReqError::Bad(format!("unknown request type {} (CRIU 4.2 knows types 1..=13)", req.r#type));
        return fail(Empty, &e.into());
    };
    if let Some(c) = auth::caller().filter(|c| !c.alive()) {
        // Its pid may name another process now: nothing runs for it.
        return fail(ty, &c.deny("be served: it exited (its pid may be another process's now)").into());
    }
    let r = match ty {
        Version => Ok(version()),
        FeatureCheck => feature_check(req),
        Check => check(base, peer, req),
        Dump => dump(base, sk, peer, req),
        Restore => restore(base, sk, peer, req),
        WaitPid => wait_pid(req),
        PreDump | SinglePreDump => Err(unsupported("pre-dump")),
        PageServer | PageServerChld => Err(unsupported("the page server")),
        CpuinfoDump | CpuinfoCheck => cpuinfo(base, peer, req, ty),
        Notify => Err(ReqError::Bad("unexpected NOTIFY request: no notification is pending".into()).into()),
        Empty => Err(ReqError::Bad("EMPTY is not a request".into()).into()),
    };
    r.unwrap_or_else(|e| {
        tracing::error!("{e:#}");
        let mut resp = fail(ty, &e);
        match ty {
            Dump => resp.dump = Some(CriuDumpResp { restored: Some(false) }),
            Restore => resp.restore = Some(CriuRestoreResp { pid: -1 }),
            _ => {}
        }
        resp
    })
}

fn unsupported(what: &str) -> anyhow::Error {
    ReqError::Unsupported(format!("{what} is not supported yet by this criu (RPC request refused)")).into()
}

fn ok(ty: CriuReqType) -> CriuResp {
    CriuResp { r#type: ty as i32, success: true, ..Default::default() }
}

/// A failure answer: the errno behind the error and its whole chain.
pub fn fail(ty: CriuReqType, e: &anyhow::Error) -> CriuResp {
    CriuResp {
        r#type: ty as i32,
        success: false,
        cr_errno: errno_of(e),
        cr_errmsg: Some(format!("{e:#}")),
        ..Default::default()
    }
}

/// The errno of the first error in the chain that carries one (ours,
/// nix's, std's, compel's, an image's), for RPC's cr_errno.
fn errno_of(e: &anyhow::Error) -> Option<i32> {
    e.chain().find_map(|cause| {
        if let Some(r) = cause.downcast_ref::<ReqError>() {
            Some(r.errno())
        } else if let Some(d) = cause.downcast_ref::<auth::Denied>() {
            Some(d.errno())
        } else if let Some(n) = cause.downcast_ref::<nix::errno::Errno>() {
            Some(*n as i32)
        } else if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            io.raw_os_error()
        } else if let Some(c) = cause.downcast_ref::<crate::compel::Error>() {
            c.errno().map(|n| n as i32)
        } else {
            cause.downcast_ref::<ImageError>().map(ImageError::errno)
        }
    })
}

fn version() -> CriuResp {
    CriuResp {
        version: Some(CriuVersion {
            major_number: crate::CRIU_VERSION_MAJOR,
            minor_number: crate::CRIU_VERSION_MINOR,
            name: None,
            ..Default::default()
        }),
        ..ok(CriuReqType::Version)
    }
}

/// A feature is reported when the kernel has it and we implement what uses it.
fn feature_check(req: &CriuReq) -> Result<CriuResp> {
    let want = req.features.as_ref().ok_or_else(|| ReqError::Bad("FEATURE_CHECK without a features message".into()))?;
    let implemented = |long: &str| table::find(long).is_some_and(|s| s.support == Support::Yes);
    let asked = |f: Option<bool>| f == Some(true);
    let feat = CriuFeatures {
        mem_track: Some(asked(want.mem_track) && implemented("track-mem") && crate::kerndat::dirty_track().available()),
        lazy_pages: Some(
            asked(want.lazy_pages) && implemented("lazy-pages") && crate::kerndat::has_uffd() && crate::kerndat::has_uffd_noncoop(),
        ),
        // pidfd_store_sk is refused until dump keeps pidfds across pre-dumps.
        pidfd_store: Some(false),
    };
    Ok(CriuResp { features: Some(feat), ..ok(CriuReqType::FeatureCheck) })
}

fn check(base: &Opts, peer: Peer, req: &CriuReq) -> Result<CriuResp> {
    let setup = opts::setup(base, req.opts.as_ref(), peer, Mode::Check)?;
    auth::opts::check(auth::caller(), &setup.opts, false)?;
    let code = crate::ops::check::run(&setup.opts)?;
    anyhow::ensure!(code == 0, "criu check found problems (see the log)");
    Ok(ok(CriuReqType::Check))
}

/// CPUINFO_DUMP / CPUINFO_CHECK: `criu cpuinfo dump|check` with the
/// request's options.
fn cpuinfo(base: &Opts, peer: Peer, req: &CriuReq, ty: CriuReqType) -> Result<CriuResp> {
    let setup = opts::setup(base, req.opts.as_ref(), peer, Mode::Cpuinfo)?;
    auth::opts::check(auth::caller(), &setup.opts, false)?;
    let sub = if ty == CriuReqType::CpuinfoDump { "dump" } else { "check" };
    let code = crate::ops::cpuinfo::run(&setup.opts, &[sub.to_string()])?;
    anyhow::ensure!(code == 0, "cpuinfo {sub} failed (see the log)");
    Ok(ok(ty))
}

fn dump(base: &Opts, sk: &OwnedFd, peer: Peer, req: &CriuReq) -> Result<CriuResp> {
    let setup = opts::setup(base, req.opts.as_ref(), peer, Mode::Dump)?;
    auth::opts::check(auth::caller(), &setup.opts, false)?;
    if let (Some(c), Some(pid)) = (auth::caller(), setup.opts.tree_id) {
        // Before anything touches a task; the whole tree again once frozen.
        auth::dump::check_live_tree(c, pid)?;
    }
    let _notify = if setup.notify { Some(notify::Guard::install(sk)?) } else { None };
    let code = crate::ops::dump::run(&setup.opts)?;
    anyhow::ensure!(code == 0, "dump finished with code {code}");
    Ok(CriuResp { dump: Some(CriuDumpResp { restored: Some(false) }), ..ok(CriuReqType::Dump) })
}

fn restore(base: &Opts, sk: &OwnedFd, peer: Peer, req: &CriuReq) -> Result<CriuResp> {
    let setup = opts::setup(base, req.opts.as_ref(), peer, Mode::Restore)?;
    auth::opts::check(auth::caller(), &setup.opts, true)?;
    let _notify = if setup.notify { Some(notify::Guard::install(sk)?) } else { None };
    let code = crate::ops::restore::run(&setup.opts)?;
    anyhow::ensure!(code == 0, "restore finished with code {code}");
    let pid = root_pid(&setup.opts).context("finding the restored root task's pid")?;
    Ok(CriuResp { restore: Some(CriuRestoreResp { pid }), ..ok(CriuReqType::Restore) })
}

/// The root task's pid, as restored (pids are restored as they were).
fn root_pid(opts: &Opts) -> Result<i32> {
    let dir = ImageDir::open(opts.imgs_dir.as_deref().unwrap_or(std::path::Path::new(".")))?;
    let items: Vec<PstreeEntry> = ImageReader::open_kind(&dir, "pstree.img", kinds::pstree())?.all()?;
    Ok(items.first().context("pstree.img is empty")?.pid as i32)
}

/// WAIT_PID: wait for a child of ours (a task restored without rst_sibling).
fn wait_pid(req: &CriuReq) -> Result<CriuResp> {
    let pid = req.pid.ok_or_else(|| ReqError::Bad("WAIT_PID without a pid".into()))?;
    if let Some(c) = auth::caller() {
        auth::dump::check_own(c, pid as i32)?;
    }
    let st = waitpid(Pid::from_raw(pid as i32), None).with_context(|| format!("waiting for {pid}"))?;
    let status = match st {
        WaitStatus::Exited(_, code) => code << 8,
        WaitStatus::Signaled(_, sig, core) => sig as i32 | if core { 0x80 } else { 0 },
        other => anyhow::bail!("{pid}: unexpected wait status {other:?}"),
    };
    Ok(CriuResp { status: Some(status), ..ok(CriuReqType::WaitPid) })
}

#[cfg(test)]
mod tests {
    use super::errno_of;
    use anyhow::Context;
    use nix::errno::Errno;

    #[test]
    fn errno_comes_from_any_error_in_the_chain() {
        let compel = crate::compel::Error::Remote { pid: 7, op: "mmap", errno: Errno::ENOMEM };
        let e = Err::<(), _>(compel).context("infecting task 7").context("dump").unwrap_err();
        assert_eq!(errno_of(&e), Some(libc::ENOMEM));

        let e = Err::<(), _>(Errno::EPERM).context("ptrace").unwrap_err();
        assert_eq!(errno_of(&e), Some(libc::EPERM));

        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        let e = Err::<(), _>(io).context("open").unwrap_err();
        assert_eq!(errno_of(&e), Some(libc::ENOENT));

        // No errno in the first cause: the next one that has one counts.
        let gone = crate::compel::Error::Gone { pid: 7, what: "exited".into() };
        let e = anyhow::Error::new(gone).context("seizing");
        assert_eq!(errno_of(&e), None);
        let inner = Err::<(), _>(Errno::ESRCH).context("waitpid").unwrap_err();
        let e = inner.context(std::io::Error::other("no os error")).context("outer");
        assert_eq!(errno_of(&e), Some(libc::ESRCH));
    }
}
