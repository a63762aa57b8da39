//! eventfd00: an eventfd with a count below 2^32 and O_NONBLOCK: both
//! survive. (A count past 32 bits is eventfd01's.)

fn main() {
    zdtm::eventfd_count_test(0x7fff_0010)
}
