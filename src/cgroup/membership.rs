//! Which cgroups a task is in (/proc/PID/cgroup), compared with criu's own.
//! We write no cgroup images yet, so a restored task lands in criu's
//! cgroups: unless the caller said `--manage-cgroups=ignore` (CRIU's
//! default mode carries membership, a `--freeze-cgroup` freezer included),
//! a dump refuses a task that is elsewhere, and a restore accepts a
//! `--cgroup-root` only when it names where criu already is.

use anyhow::{bail, Context, Result};

/// One line of /proc/PID/cgroup: the hierarchy's controllers (`cpu,cpuacct`,
/// `name=systemd`, empty for cgroup v2) and the path in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub controllers: String,
    pub path: String,
}

/// Parse /proc/PID/cgroup text.
pub fn parse(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?.to_string();
            let path = parts.next()?.to_string();
            Some(Membership { controllers, path })
        })
        .collect()
}

fn read(pid: &str) -> Result<Vec<Membership>> {
    let p = format!("/proc/{pid}/cgroup");
    Ok(parse(&std::fs::read_to_string(&p).with_context(|| format!("can't read {p}"))?))
}

/// Refuse task `pid` if any of its cgroups is not criu's own.
pub fn check_same_as_criu(pid: i32) -> Result<()> {
    let ours = read("self")?;
    for m in read(&pid.to_string())? {
        let mine = ours.iter().find(|o| o.controllers == m.controllers);
        if mine.map(|o| &o.path) != Some(&m.path) {
            let name = if m.controllers.is_empty() { "cgroup2" } else { m.controllers.as_str() };
            bail!(
                "task {pid} is in cgroup {name}:{} (criu is in {}): a restore would put it in criu's cgroup; \
                 carrying cgroups is not supported yet (--manage-cgroups=ignore accepts that)",
                m.path,
                mine.map(|o| o.path.as_str()).unwrap_or("no such hierarchy")
            );
        }
    }
    Ok(())
}

/// Refuse a `--cgroup-root [CTL:]PATH` that is not where criu is: for CTL
/// (one controller of a hierarchy, or the whole list; empty for cgroup v2),
/// or for every hierarchy without CTL.
pub fn check_root_is_criu_own(ctl: Option<&str>, path: &str) -> Result<()> {
    let ours = read("self")?;
    let matches = |m: &Membership| match ctl {
        None => true,
        Some(c) => m.controllers == c || m.controllers.split(',').any(|x| x == c),
    };
    let mut any = false;
    for m in ours.iter().filter(|m| matches(m)) {
        any = true;
        if m.path != path {
            let name = if m.controllers.is_empty() { "cgroup2" } else { m.controllers.as_str() };
            bail!(
                "--cgroup-root {}{path}: criu is in {name}:{}; moving restored tasks to another cgroup is not supported yet",
                ctl.map(|c| format!("{c}:")).unwrap_or_default(),
                m.path
            );
        }
    }
    if !any {
        bail!("--cgroup-root {}:{path}: criu is in no such cgroup hierarchy", ctl.unwrap_or(""));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v1_and_v2_lines() {
        let m = parse("12:cpu,cpuacct:/a/b\n1:name=systemd:/user.slice\n0::/x:y\n");
        assert_eq!(m[0], Membership { controllers: "cpu,cpuacct".into(), path: "/a/b".into() });
        assert_eq!(m[1].controllers, "name=systemd");
        assert_eq!(m[2], Membership { controllers: "".into(), path: "/x:y".into() });
    }

    #[test]
    fn our_own_cgroups_pass_and_others_do_not() {
        let me = std::process::id() as i32;
        check_same_as_criu(me).unwrap();
        let ours = read("self").unwrap();
        let first = &ours[0];
        let ctl = first.controllers.split(',').next().unwrap_or("");
        check_root_is_criu_own(Some(ctl), &first.path).unwrap();
        let e = check_root_is_criu_own(Some(ctl), "/surely/not/here").unwrap_err().to_string();
        assert!(e.contains("/surely/not/here") && e.contains("not supported yet"), "{e}");
    }
}
