//! stopped00: a child stopped by SIGSTOP comes back stopped by it; SIGCONT
//! resumes it, SIGTERM kills it (see `src/stopped.rs`).

#[path = "../stopped.rs"]
mod stopped;

fn main() {
    stopped::run(libc::SIGSTOP, 0)
}
