//! stopped01: a child in a group stop by SIGTSTP (a job stopped from its
//! terminal, with the default action) comes back stopped by SIGTSTP: its
//! parent's wait reports SIGTSTP; SIGCONT resumes it, SIGTERM kills it
//! (see `src/stopped.rs`).

#[path = "../stopped.rs"]
mod stopped;

fn main() {
    stopped::run(libc::SIGTSTP, 0)
}
