//! cgroups. The v1 freezer `--freeze-cgroup` uses to stop a tree before
//! seizing it, and tasks' cgroup membership against criu's own (no cgroup
//! images yet: `--manage-cgroups` refuses a tree elsewhere).

pub mod freezer;
pub mod membership;
