//! mlock_setuid: mlock00 locked as root, then running as another user.
fn main() {
    zdtm::mlock::run(true)
}
