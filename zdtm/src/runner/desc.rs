//! The test list: `tests.desc`'s lines (a test's name and its flags
//! `suid`, `noauto`, `crfail`, `excl`, `traffic`, `ping`, `opts: --OPTION ...`,
//! `criu42-fail[(SIDE)]: REASON`) parsed into `TestDesc`s.

use super::interop;

#[derive(Clone, Debug, PartialEq)]
pub struct TestDesc {
    pub name: String,
    pub suid: bool,
    pub noauto: bool,
    pub crfail: bool,
    pub excl: bool,
    /// `traffic`: its sockets carry data without pause, so the queued
    /// bytes the /proc compare reads (SIOCINQ) differ from one moment to
    /// the next; the program counts and checks every byte itself.
    pub traffic: bool,
    /// `ping`: the test makes ping sockets; net.ipv4.ping_group_range is
    /// widened for its run (`sysctl.rs`).
    pub ping: bool,
    /// `opts: --OPTION ...` (as CRIU's zdtm desc `opts`): criu options the
    /// test's state needs (`--file-locks`), given to every dump, pre-dump
    /// and restore of it, whichever criu runs them.
    pub opts: Vec<String>,
    /// `criu42-fail[(dump|restore)]: REASON`: the real CRIU 4.2 cannot
    /// checkpoint/restore this test (a CRIU limitation, named); the interop
    /// runs where CRIU 4.2 does that step report its failures as that.
    pub criu42_fail: Option<(interop::Side, String)>,
}

pub fn parse_desc(text: &str) -> Result<Vec<TestDesc>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        // `criu42-fail[(SIDE)]: REASON` takes the rest of the line.
        let (line, criu42_fail) = match line.find("criu42-fail") {
            Some(at) => {
                let (head, why) = line[at..].split_once(':').unwrap_or((&line[at..], ""));
                let side = interop::parse_side(head)
                    .ok_or_else(|| format!("tests.desc:{}: {head}? (criu42-fail, criu42-fail(dump), criu42-fail(restore))", n + 1))?;
                if why.trim().is_empty() {
                    return Err(format!("tests.desc:{}: {head}: needs a reason", n + 1));
                }
                (&line[..at], Some((side, why.trim().to_string())))
            }
            None => (line, None),
        };
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else { continue };
        let mut d = TestDesc {
            name: name.to_string(),
            suid: false,
            noauto: false,
            crfail: false,
            excl: false,
            traffic: false,
            ping: false,
            opts: Vec::new(),
            criu42_fail,
        };
        let mut in_opts = false;
        for f in words {
            if let Some(o) = f.strip_prefix("opts:") {
                in_opts = true;
                if !o.is_empty() {
                    d.opts.push(o.to_string());
                }
                continue;
            }
            if in_opts && f.starts_with('-') {
                d.opts.push(f.to_string());
                continue;
            }
            in_opts = false;
            match f {
                "suid" => d.suid = true,
                "noauto" => d.noauto = true,
                "crfail" => d.crfail = true,
                "excl" => d.excl = true,
                "traffic" => d.traffic = true,
                "ping" => d.ping = true,
                _ => return Err(format!("tests.desc:{}: unknown flag {f:?}", n + 1)),
            }
        }
        if out.iter().any(|t: &TestDesc| t.name == d.name) {
            return Err(format!("tests.desc:{}: {name} listed twice", n + 1));
        }
        out.push(d);
    }
    Ok(out)
}
