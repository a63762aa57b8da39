//! Networking as a whole, beyond one socket: the network lock (`lock`),
//! which keeps packets away from the tree's connections while they are
//! dumped and until they are restored.

pub mod lock;
mod lock_cmd;
#[cfg(test)]
mod lock_tests;
/// A tree's own network namespace (`ns`): its images, made anew at restore.
pub mod ns;
