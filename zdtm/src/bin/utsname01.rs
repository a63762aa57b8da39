//! utsname01 (suid, crfail): the root stays in the host's uts namespace
//! and forks C, which makes one of its own. UTS namespaces nested in
//! the tree are refused (as by CRIU 4.2): the dump must be refused, naming C, and leave
//! the tree as it was. After it the root checks C still lives in a uts
//! namespace other than its own and still counts.
//!
//! `--sabotage check`: the root expects C in its own namespace.

fn main() {
    zdtm::nested_ns_child(libc::CLONE_NEWUTS, "uts", "uts")
}
