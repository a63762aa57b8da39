//! `criu service [--address PATH] [--pidfile F] [-d] [--status-fd N]`: a
//! listening unix SOCK_SEQPACKET socket (mode 0666); each connection gets
//! its own worker process, `criu swrk` on the accepted socket, started
//! with default options as CRIU's workers are (init_opts). Runs until
//! killed.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt};
use std::process::{Child, Command};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};

use crate::opts::Opts;
use crate::scripts::{self, Action};

/// CRIU's CR_DEFAULT_SERVICE_ADDRESS.
const DEFAULT_ADDRESS: &str = "./criu_service.socket";

fn listener(path: &str) -> Result<OwnedFd> {
    let sk = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None)
        .context("Can't initialize service socket")?;
    let addr = UnixAddr::new(path).with_context(|| format!("bad service address {path}"))?;
    let _ = std::fs::remove_file(path);
    bind(sk.as_raw_fd(), &addr).with_context(|| format!("Can't bind the service socket to {path}"))?;
    tracing::info!("The service socket is bound to {path}");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("Can't change permissions of the service socket {path}"))?;
    listen(&sk, Backlog::new(16).context("backlog")?).context("Can't listen for socket connections")?;
    Ok(sk)
}

/// The service is up: status-ready scripts, then `\0` on --status-fd.
fn status_ready(opts: &Opts) -> Result<()> {
    scripts::run(Action::StatusReady, opts, None, None)?;
    if let Some(fd) = opts.status_fd {
        std::fs::read_link(format!("/proc/self/fd/{fd}")).with_context(|| format!("--status-fd {fd} is not open"))?;
        let mut f = std::fs::File::from(crate::sys::inherited::take(fd).with_context(|| format!("--status-fd {fd}"))?);
        f.write_all(&[0]).with_context(|| format!("Unable to write into the status fd {fd}"))?;
    }
    Ok(())
}

fn worker(conn: OwnedFd) -> Result<Child> {
    fcntl(&conn, FcntlArg::F_SETFD(FdFlag::empty())).context("clearing close-on-exec on the connection")?;
    let exe = std::env::current_exe().context("finding the criu binary")?;
    let child = Command::new(exe)
        .args(["--no-default-config", "swrk", &conn.as_raw_fd().to_string()])
        .env_remove("CRIU_CONFIG_FILE")
        .spawn()
        .context("Can't start a worker")?;
    Ok(child)
}

/// Run `criu service`.
pub fn run(opts: &Opts) -> Result<i32> {
    let path = match &opts.addr {
        Some(a) => a.clone(),
        None => {
            tracing::warn!("Binding to local dir address!");
            DEFAULT_ADDRESS.to_string()
        }
    };
    let sk = listener(&path)?;
    let write_pidfile = || -> Result<()> {
        if let Some(pf) = &opts.pidfile {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(pf)
                .with_context(|| format!("Can't write pidfile {}", pf.display()))?;
            write!(f, "{}", std::process::id()).with_context(|| format!("Can't write pidfile {}", pf.display()))?;
        }
        Ok(())
    };
    if opts.restore_detach {
        // The caller gets control back once the pidfile names the daemon.
        crate::sys::daemon::daemonize(write_pidfile).context("Can't run service server in the background")?;
    } else {
        write_pidfile()?;
    }
    status_ready(opts)?;
    // Fds we inherited stay out of the workers (each gets its connection only).
    crate::sys::fd::cloexec_from(3).context("close_range")?;
    let mut workers: Vec<Child> = Vec::new();
    loop {
        tracing::info!("Waiting for connection...");
        let conn = match crate::sys::fd::accept_cloexec(&sk) {
            Ok(fd) => fd,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e).context("Can't accept connection"),
        };
        tracing::info!("Connected.");
        match worker(conn) {
            Ok(c) => workers.push(c),
            Err(e) => tracing::error!("{e:#}"),
        }
        workers.retain_mut(|w| match w.try_wait() {
            Ok(Some(st)) => {
                tracing::info!("Worker(pid {}) exited with {st}", w.id());
                false
            }
            _ => true,
        });
    }
}
