//! `criu check`: placeholder until the kernel probes land.
use crate::opts::Opts;

pub fn run(_opts: &Opts) -> anyhow::Result<i32> {
    anyhow::bail!("check is not implemented yet")
}
