//! LSM labels of a thread (AppArmor profile, SELinux/Smack context, the
//! SELinux socket-creation context). Our images carry none of them (CRIU's
//! `creds.lsm_profile` / `lsm_sockcreate`): a restored task gets the label
//! of the criu that restores it. So the dump refuses, naming the thread, a
//! label other than the default ("" or AppArmor's "unconfined") or the one
//! criu itself runs under. Without an LSM the files read EINVAL.

use anyhow::{bail, Result};

/// The files that show a thread's label, by the LSM that owns each.
const CURRENT: [&str; 3] = ["attr/current", "attr/apparmor/current", "attr/smack/current"];
const SOCKCREATE: &str = "attr/sockcreate";

/// A label as the kernel shows it, without the trailing NUL or newline;
/// None when no LSM answers (EINVAL, ENOENT).
fn read(path: &str) -> Option<String> {
    let b = std::fs::read(path).ok()?;
    Some(String::from_utf8_lossy(&b).trim_end_matches(['\0', '\n']).to_owned())
}

/// Whether a task label `label` comes back on restore: none, AppArmor's
/// "unconfined" (its own mode suffix aside), or the restoring criu's `ours`.
pub fn label_restores(label: &str, ours: Option<&str>) -> bool {
    let l = label.trim();
    l.is_empty() || l == "unconfined" || l.strip_suffix("(unconfined)").is_some_and(|p| p.trim() == "unconfined") || Some(l) == ours.map(str::trim)
}

/// Refuse thread `tid` of `pid` if it has an LSM label the restore would
/// not give back.
pub fn check(pid: i32, tid: i32) -> Result<()> {
    for f in CURRENT.iter().chain(std::iter::once(&SOCKCREATE)) {
        let Some(label) = read(&format!("/proc/{pid}/task/{tid}/{f}")) else { continue };
        let ours = read(&format!("/proc/self/{f}"));
        if !label_restores(&label, ours.as_deref()) {
            bail!("thread {tid} of {pid} has the LSM label {label:?} ({f}; criu runs under {ours:?}): dumping LSM labels is not supported");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::label_restores;

    #[test]
    fn default_labels_restore() {
        for l in ["", "unconfined", "unconfined\n", "unconfined (unconfined)"] {
            assert!(label_restores(l, None), "{l:?}");
        }
        // The restoring criu's own label is inherited.
        assert!(label_restores("unconfined_u:unconfined_r:unconfined_t:s0", Some("unconfined_u:unconfined_r:unconfined_t:s0")));
        assert!(label_restores("_", Some("_")));
    }

    #[test]
    fn other_labels_do_not() {
        for l in ["/usr/bin/man (enforce)", "docker-default (enforce)", "system_u:system_r:container_t:s0:c1,c2", "_", "unconfined_t"] {
            assert!(!label_restores(l, None), "{l:?}");
            assert!(!label_restores(l, Some("unconfined_u:unconfined_r:unconfined_t:s0")), "{l:?}");
        }
    }

    #[test]
    fn our_own_threads_pass() {
        // Whatever LSM this machine runs, criu's own thread has criu's label.
        let me = std::process::id() as i32;
        super::check(me, me).unwrap();
    }
}
