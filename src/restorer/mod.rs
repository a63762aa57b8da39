//! The restorer: the last stage of a restore, run from a no_std blob placed
//! where no VMA of the task lies. It drops criu's own mappings, moves the
//! premapped memory into place, restores the state only the task can set
//! for itself, and jumps into the saved registers with rt_sigreturn.

pub mod plan;

use plan::Plan;

/// Hand the process over to the restorer. Returns only if that could not
/// start, with the fd to report through (the restorer itself reports
/// through `plan.ready_fd`).
pub fn jump(plan: Plan) -> (anyhow::Error, std::os::fd::OwnedFd) {
    (anyhow::anyhow!("the restorer blob is not built yet: restore can't finish"), plan.ready_fd)
}
