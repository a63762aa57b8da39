//! netns04 (suid, crfail): the root stays in the host's network namespace
//! and forks C, which makes one of its own. Network namespaces nested in
//! the tree are not carried: the dump must be refused, naming C, and leave
//! the tree as it was. After it the root checks C still lives in a network
//! namespace other than its own and still counts.
//!
//! `--sabotage check`: the root expects C in its own namespace.

fn main() {
    zdtm::nested_ns_child(libc::CLONE_NEWNET, "net", "network")
}
