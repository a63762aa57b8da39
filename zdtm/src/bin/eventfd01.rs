//! eventfd01: an eventfd whose count needs more than 32 bits (eventfd(2)'s
//! initial value is 32-bit, so a restore can't just pass the count there):
//! the whole count and O_NONBLOCK survive.

fn main() {
    zdtm::eventfd_count_test(0x1_0000_0010)
}
