//! What a run does: the modes (`Mode`: nocr, norst, cr; with iterations,
//! pre-dumps, a fault), the runner's self-tests (`SelfTest`), a `Plan`
//! (a mode over a list of tests, with its criu binaries) and its label,
//! and the default plan list of `cargo test`.

use std::fmt::Write as _;
use std::time::Duration;

use super::TestDesc;
use super::interop::CriuBin;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// No criu at all: start, compare two snapshots, stop.
    NoCr,
    /// `criu dump -R`, no restore.
    LeaveRunning,
    /// `criu dump` then `criu restore -d`.
    Cr,
}

/// Runner self-tests: each case must fail, at the given stage.
#[derive(Clone, Debug, PartialEq)]
pub enum SelfTest {
    None,
    /// ZDTM_SABOTAGE=mode for the program (check, crash, hang, noready, noverdict).
    Sabotage(String),
    /// The runner changes the task from outside between the snapshots (nice,
    /// oom_score_adj, a VmFlag, fd flags, a pipe size, stopped): the compare
    /// must report each (see `Case::meddle`).
    StateDiff,
    /// A byte of maps00's pattern flipped in pages-*.img before the restore.
    CorruptPages,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub mode: Mode,
    pub iters: u32,
    pub fault: Option<u32>,
    pub pre_dump: bool,
    pub flavor: String,
    pub selftest: SelfTest,
    pub tests: Vec<TestDesc>,
    pub ready_timeout: Duration,
    pub stop_timeout: Duration,
    /// Who dumps and who restores (None: the config's criu, ours).
    pub dump_criu: Option<CriuBin>,
    pub restore_criu: Option<CriuBin>,
    /// Why this plan runs every test as root, if it does.
    pub as_root: Option<String>,
}

impl Plan {
    pub(super) fn new(mode: Mode, tests: Vec<TestDesc>) -> Plan {
        Plan {
            mode,
            iters: 1,
            fault: None,
            pre_dump: false,
            flavor: "h".into(),
            selftest: SelfTest::None,
            tests,
            ready_timeout: Duration::from_secs(20),
            stop_timeout: Duration::from_secs(20),
            dump_criu: None,
            restore_criu: None,
            as_root: None,
        }
    }

    /// The plan pairs criu binaries of which one is not ours: dump
    /// refusals and `criu42-fail` limitations are reported, not failed.
    pub fn interop(&self) -> bool {
        [&self.dump_criu, &self.restore_criu]
            .into_iter()
            .any(|c| c.as_ref().is_some_and(|c| !c.ours))
    }

    pub fn label(&self) -> String {
        let mut l = match self.mode {
            Mode::NoCr => "nocr".to_string(),
            Mode::LeaveRunning => "norst".to_string(),
            Mode::Cr => "cr".to_string(),
        };
        if self.iters > 1 {
            let _ = write!(l, "-iters{}", self.iters);
        }
        if self.pre_dump {
            l.push_str("-pre");
        }
        if let Some(f) = self.fault {
            let _ = write!(l, "-fault{f}");
        }
        if self.flavor != "h" {
            let _ = write!(l, "-{}", self.flavor);
        }
        match &self.selftest {
            SelfTest::None => {}
            SelfTest::Sabotage(m) => l = format!("selftest-sabotage-{m}"),
            SelfTest::StateDiff => l = "selftest-state-diff".into(),
            SelfTest::CorruptPages => l.push_str("-selftest-corrupt-pages"),
        }
        match (&self.dump_criu, &self.restore_criu) {
            (Some(d), Some(r)) if d.name == r.name => {
                let _ = write!(l, "-{}", d.name);
            }
            (d, r) => {
                let name = |c: &Option<CriuBin>| c.as_ref().map(|c| c.name.clone());
                if d.is_some() || r.is_some() {
                    let _ = write!(
                        l,
                        "-{}-{}",
                        name(d).unwrap_or_else(|| "default".into()),
                        name(r).unwrap_or_else(|| "default".into())
                    );
                }
            }
        }
        l
    }
}

/// What `cargo test` runs: every program without criu, the self-tests that
/// prove failures are caught, then -R, full dump/restore once and three
/// times in a row (skipped while criu refuses those commands), then the
/// corrupt-pages self-test.
pub fn default_plans(tests: &[TestDesc]) -> Vec<Plan> {
    let one = |name: &str| {
        tests
            .iter()
            .filter(|t| t.name == name)
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut plans = vec![Plan::new(Mode::NoCr, tests.to_vec())];
    let mut p = Plan::new(Mode::NoCr, tests.to_vec());
    p.selftest = SelfTest::Sabotage("check".into());
    plans.push(p);
    for m in ["crash", "hang", "noready", "noverdict"] {
        let mut p = Plan::new(Mode::NoCr, one("umask00"));
        p.selftest = SelfTest::Sabotage(m.into());
        p.ready_timeout = Duration::from_secs(3);
        p.stop_timeout = Duration::from_secs(3);
        plans.push(p);
    }
    let mut p = Plan::new(Mode::NoCr, [one("pipe00"), one("pstree00")].concat());
    p.selftest = SelfTest::StateDiff;
    plans.push(p);
    plans.push(Plan::new(Mode::LeaveRunning, tests.to_vec()));
    plans.push(Plan::new(Mode::Cr, tests.to_vec()));
    // The issue's bar: every test also survives three cycles in a row.
    let mut p = Plan::new(Mode::Cr, tests.to_vec());
    p.iters = 3;
    plans.push(p);
    let mut p = Plan::new(Mode::Cr, one("maps00"));
    p.selftest = SelfTest::CorruptPages;
    plans.push(p);
    plans.retain(|p| !p.tests.is_empty());
    plans
}
