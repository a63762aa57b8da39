//! stopped12: a child with 3 threads besides its main one, in a group stop
//! by SIGTSTP: every thread comes back stopped, none counts until SIGCONT,
//! then all do; SIGTERM kills it (see `src/stopped.rs`).

#[path = "../stopped.rs"]
mod stopped;

fn main() {
    stopped::run(libc::SIGTSTP, 3)
}
