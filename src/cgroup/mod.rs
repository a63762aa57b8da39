//! cgroups. For now the v1 freezer `--freeze-cgroup` uses to stop a tree
//! before seizing it (cgroup dump/restore, `--manage-cgroups`, comes later).

pub mod freezer;
