//! mlock00: locked memory stays locked (zdtm::mlock), as the test user.
fn main() {
    zdtm::mlock::run(false)
}
