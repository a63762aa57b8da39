//! The parasite commands as types: [`ParasiteCmd`] ties a command id to its
//! argument and reply structs, which come from the protocol file shared with
//! the parasite (`parasite/src/proto.rs`, re-exported here).

#[path = "../../parasite/src/proto.rs"]
mod wire;

pub use wire::*;

use crate::sys::pod::Pod;

/// One parasite command: its id and plain-data argument and reply types.
pub trait ParasiteCmd {
    const ID: u32;
    type Args: Pod;
    type Reply: Pod;
}

/// Echo a cookie; reply with the pid and tid seen from inside the task.
pub struct Ping;
impl ParasiteCmd for Ping {
    const ID: u32 = CMD_PING;
    type Args = PingArgs;
    type Reply = PingReply;
}

/// `rt_sigaction` of signals 1..=64 (not SIGKILL/SIGSTOP).
pub struct DumpSigacts;
impl ParasiteCmd for DumpSigacts {
    const ID: u32 = CMD_DUMP_SIGACTS;
    type Args = ();
    type Reply = SigactsReply;
}

/// umask, personality, ids, prctl flags, brk, sigaltstack, itimers.
pub struct DumpMisc;
impl ParasiteCmd for DumpMisc {
    const ID: u32 = CMD_DUMP_MISC;
    type Args = ();
    type Reply = MiscReply;
}
