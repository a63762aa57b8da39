//! One test's life cycle: start the program in its work dir and wait
//! until it is ready, run criu for it (`CriuRun`), SIGTERM it and read
//! its verdict, and clean up what is left; the result (`Res`) and the
//! stage a failure happened at (`Stage`).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::reaper::{describe_status, exited, kill, reaper, run_cmd, spawn, wait_exit};
use super::{Config, ENV_PROBE, PATH_ENV, Plan, SelfTest, TEST_UID, TestDesc};
use super::{descendants, task_state};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stage {
    Setup,
    Ready,
    Dump,
    Restore,
    Compare,
    Stop,
    /// The program's own verdict (or its death).
    Verdict,
}

#[derive(Debug)]
pub enum Res {
    Pass(Option<String>),
    Skip(String),
    Fail(Stage, String),
    /// Interop: the dumper refused the dump (its reason); the task ran on
    /// and passed. Neither a pass nor a failure.
    Refused(String),
    /// Interop: failed as tests.desc's `criu42-fail` says CRIU 4.2 does.
    Known(String),
}

pub(super) struct Case<'a> {
    pub(super) cfg: &'a Config,
    pub(super) plan: &'a Plan,
    pub(super) test: &'a TestDesc,
    pub(super) wd: PathBuf,
    pub(super) details: Vec<String>,
    /// Shown with a PASS (why an expected failure was fine).
    pub(super) note: Option<String>,
    /// Interop: the dumper's reason for refusing the dump.
    pub(super) refused: Option<String>,
    /// Differences a known gap covers (known_gaps.rs): printed whatever the result.
    pub(super) warnings: Vec<String>,
    pub(super) pid: i32,
}

pub(super) struct CriuRun {
    pub(super) status: Option<i32>,
    pub(super) text: String,
    pub(super) log: PathBuf,
}

impl CriuRun {
    pub(super) fn ok(&self) -> bool {
        self.status
            .is_some_and(|s| libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0)
    }
    pub(super) fn status_text(&self) -> String {
        self.status
            .map(describe_status)
            .unwrap_or_else(|| "timed out".into())
    }
    /// criu's own "I can't do that yet": a refused command or option.
    pub(super) fn unsupported(&self) -> Option<String> {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        self.text.lines().chain(log.lines()).find_map(|l| {
            let refused = l.contains("is not supported yet")
                && (l.contains("command '") || l.contains("option --"));
            refused.then(|| l.trim().to_string())
        })
    }
    pub(super) fn errors(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let mut errs: Vec<&str> = self
            .text
            .lines()
            .chain(log.lines())
            .filter(|l| l.contains("Error"))
            .collect();
        errs.dedup();
        // CRIU 4.2 without CAP_SYS_RESOURCE always says this; it is harmless.
        errs.retain(|l| !l.contains("Can't setup RLIMIT_NOFILE for self"));
        if errs.is_empty() {
            errs = self.text.lines().rev().take(3).collect();
        }
        errs.iter()
            .take(4)
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

pub(super) fn tail(path: &Path, n: usize) -> Vec<String> {
    let t = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

pub(super) fn chown(path: &Path, id: u32) {
    if let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) {
        // SAFETY: a valid C string.
        unsafe { libc::chown(c.as_ptr(), id, id) };
    }
}

impl Case<'_> {
    pub(super) fn p(&self, name: &str) -> PathBuf {
        self.wd.join(name)
    }

    fn start(&mut self) -> Result<(), Res> {
        let setup = |e: String| Res::Fail(Stage::Setup, e);
        let _ = fs::remove_dir_all(&self.wd);
        fs::create_dir_all(&self.wd)
            .map_err(|e| setup(format!("mkdir {}: {e}", self.wd.display())))?;
        // The work root and the mode's dir must be reachable by the test user.
        for d in [
            self.cfg.workroot.as_path(),
            self.wd.parent().unwrap_or(&self.wd),
        ] {
            let _ = fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755));
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o666)
            .open(self.p("test.log"))
            .map_err(|e| setup(format!("test.log: {e}")))?;
        let as_user = !self.test.suid && self.cfg.as_user && self.plan.as_root.is_none();
        if as_user {
            chown(&self.wd, TEST_UID);
            chown(&self.p("test.log"), TEST_UID);
        }
        let bin = self.cfg.bindir.join(&self.test.name);
        if !bin.is_file() {
            // (also: std would wait for a child whose exec failed, racing the reaper)
            return Err(setup(format!(
                "no test binary {} (cargo build -p zdtm)",
                bin.display()
            )));
        }
        let mut cmd = Command::new(&bin);
        cmd.arg("--pidfile")
            .arg(self.p("test.pid"))
            .arg("--outfile")
            .arg(self.p("test.out"))
            .arg("--filename")
            .arg(self.p("test.file"))
            .arg("--dirname")
            .arg(self.p("test.dir"))
            .env_clear()
            .env("PATH", PATH_ENV)
            .env(ENV_PROBE.0, ENV_PROBE.1)
            .env("ZDTM_TEST", &self.test.name)
            .current_dir(&self.wd)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| setup(e.to_string()))?)
            .stderr(log);
        if as_user {
            cmd.env("ZDTM_UID", TEST_UID.to_string())
                .env("ZDTM_GID", TEST_UID.to_string());
        }
        if let SelfTest::Sabotage(m) = &self.plan.selftest {
            cmd.env("ZDTM_SABOTAGE", m);
        }
        if self.plan.selftest == SelfTest::StateDiff {
            cmd.env("ZDTM_STATE_DIFF", "1");
        }
        // SAFETY: setsid is async-signal-safe; the child runs nothing else
        // before exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
        }
        self.pid = spawn(&mut cmd).map_err(|e| setup(format!("start {}: {e}", bin.display())))?;

        // Ready: the pid file names our child.
        let deadline = Instant::now() + self.plan.ready_timeout;
        loop {
            if let Ok(s) = fs::read_to_string(self.p("test.pid")) {
                if s.trim() == self.pid.to_string() {
                    return Ok(());
                }
                if !s.trim().is_empty() {
                    return Err(Res::Fail(
                        Stage::Ready,
                        format!("pid file says {:?}, the test is {}", s.trim(), self.pid),
                    ));
                }
            }
            if let Some(st) = exited(self.pid) {
                // A test that can't run here says so (SKIP, exit 0)
                // before it gets ready.
                let v = fs::read_to_string(self.p("test.out")).unwrap_or_default();
                if let Some(r) = v.trim().strip_prefix("SKIP:").filter(|_| libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0) {
                    return Err(Res::Skip(format!("the test says: {}", r.trim())));
                }
                return Err(Res::Fail(
                    Stage::Ready,
                    format!(
                        "the test exited before it was ready: {}{}",
                        describe_status(st),
                        self.verdict_suffix()
                    ),
                ));
            }
            if Instant::now() > deadline {
                return Err(Res::Fail(
                    Stage::Ready,
                    format!("not ready after {:?}", self.plan.ready_timeout),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub(super) fn verdict_suffix(&self) -> String {
        match fs::read_to_string(self.p("test.out")) {
            Ok(v) => format!(" (verdict: {})", v.trim()),
            Err(_) => String::new(),
        }
    }

    pub(super) fn criu(&mut self, action: &str, args: &[String], log: &str) -> CriuRun {
        let dir = self.wd.join(
            args.iter()
                .skip_while(|a| *a != "-D")
                .nth(1)
                .map(String::as_str)
                .unwrap_or("."),
        );
        let out_path = dir.join(format!("{action}.stdout"));
        let bin = if action == "restore" {
            &self.plan.restore_criu
        } else {
            &self.plan.dump_criu
        };
        let bin = bin.as_ref().map(|b| b.path.clone()).unwrap_or_else(|| self.cfg.criu.clone());
        let mut cmd = Command::new(&bin);
        // The options the test's state needs (tests.desc `opts:`).
        let extra: &[String] = if matches!(action, "dump" | "pre-dump" | "restore") { &self.test.opts } else { &[] };
        cmd.args(args)
            .args(extra)
            .env_clear()
            .env("PATH", PATH_ENV)
            .current_dir(&self.wd)
            .stdin(Stdio::null());
        if let Some(f) = self.plan.fault.filter(|_| action == "dump") {
            cmd.env("CRIU_FAULT", f.to_string());
        }
        let text;
        let status = match File::create(&out_path).and_then(|f| Ok((f.try_clone()?, f))) {
            Ok((o, e)) => {
                cmd.stdout(o).stderr(e);
                let st = run_cmd(&mut cmd, self.cfg.criu_timeout);
                text = fs::read_to_string(&out_path).unwrap_or_default();
                st.unwrap_or_else(|e| {
                    self.details.push(format!("can't run {}: {e}", bin.display()));
                    Some(0x7f00)
                })
            }
            Err(e) => {
                text = format!("can't create {}: {e}", out_path.display());
                Some(0x7f00)
            }
        };
        let run = CriuRun {
            status,
            text,
            log: dir.join(log),
        };
        self.details.push(format!(
            "criu {action} ({}): {} (log {})",
            bin.display(),
            run.status_text(),
            run.log.display()
        ));
        run
    }

    /// SIGTERM, wait, read the verdict.
    fn stop(&mut self) -> Res {
        if task_state(self.pid) == 'T' {
            // A stopped test (stopped10) is continued first: a stopped
            // task runs no handler.
            kill(self.pid, libc::SIGCONT);
        }
        kill(self.pid, libc::SIGTERM);
        let st = match wait_exit(self.pid, self.plan.stop_timeout) {
            Some(st) => st,
            None => {
                return Res::Fail(
                    Stage::Stop,
                    format!(
                        "still running {:?} after SIGTERM (state {:?})",
                        self.plan.stop_timeout,
                        task_state(self.pid)
                    ),
                );
            }
        };
        let verdict = fs::read_to_string(self.p("test.out")).unwrap_or_default();
        let verdict = verdict.trim();
        let clean = libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0;
        if verdict == "PASS" && clean {
            Res::Pass(None)
        } else if let Some(r) = verdict.strip_prefix("SKIP:").filter(|_| clean) {
            Res::Skip(format!("the test says: {}", r.trim()))
        } else if let Some(r) = verdict.strip_prefix("FAIL:") {
            Res::Fail(
                Stage::Verdict,
                format!("{} ({})", r.trim(), describe_status(st)),
            )
        } else if verdict.is_empty() {
            Res::Fail(
                Stage::Verdict,
                format!("no verdict; the test ended with {}", describe_status(st)),
            )
        } else {
            Res::Fail(
                Stage::Verdict,
                format!("verdict {verdict:?} with {}", describe_status(st)),
            )
        }
    }

    fn cleanup(&mut self) {
        if self.pid <= 0 {
            return;
        }
        if exited(self.pid).is_none() && task_state(self.pid) != '?' {
            // Still here (a failure path): its descendants (some may lead
            // groups of their own), the test's session/group, then the test.
            for d in descendants(self.pid) {
                kill(d, libc::SIGKILL);
            }
            kill(-self.pid, libc::SIGKILL);
            kill(self.pid, libc::SIGKILL);
            wait_exit(self.pid, Duration::from_secs(10));
        }
        reaper().exits.lock().unwrap().remove(&self.pid);
    }

    pub(super) fn run(&mut self) -> Res {
        if self.plan.flavor != "h" {
            return Res::Skip(format!("flavor {} is not built yet", self.plan.flavor));
        }
        // Held until the test is cleaned up, whatever its result.
        let _range = match self.test.ping.then(super::sysctl::PingRange::widen).transpose() {
            Ok(r) => r,
            Err(e) => return Res::Skip(e),
        };
        let res = match self.start() {
            Err(r) => r,
            Ok(()) => match self.exercise() {
                Ok(()) => self.stop(),
                Err(r) => r,
            },
        };
        self.cleanup();
        drop(_range);
        match res {
            Res::Pass(_) if self.refused.is_some() => Res::Refused(self.refused.take().unwrap_or_default()),
            Res::Pass(None) => Res::Pass(self.note.take()),
            r => r,
        }
    }
}
