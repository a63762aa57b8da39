#!/usr/bin/env bash
# The test command: installs what the tests need on a fresh machine of this
# project's kind (root, Debian, Rust toolchain present), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

fixtures=../shared/fixtures/criu-4.2
if [ ! -d "$fixtures" ]; then
    echo "error: $fixtures is missing (the CRIU 4.2 fixture images live in ../shared beside this checkout)" >&2
    exit 1
fi

# CRIU's own crit (Debian package criu) is an independent check of the images we write.
command -v crit >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq criu >/dev/null; }

# The network lock (--network-lock nftables|iptables) runs nft and iptables; its tests make a
# network namespace and bring lo up with ip.
for tool in nft:nftables iptables:iptables ip:iproute2; do
    command -v "${tool%%:*}" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool#*:}" >/dev/null; }
done

# The reference CRIU 4.2 (the zdtm interop matrix in tests/zdtm.rs runs it): its runtime libraries.
criu42=../shared/tools/criu-4.2
if [ -f "$criu42/install-deps.sh" ]; then
    bash "$criu42/install-deps.sh"
else
    echo "note: no $criu42/install-deps.sh: the zdtm interop runs will skip (no CRIU 4.2)" >&2
fi

# Restores give tasks back their pids; a pid freed by a killed tree can be taken by any new
# process once the kernel's pid counter wraps (at 32768 by default, a few times per run here).
# That race is the machine's, not ours (CRIU has it too): with the largest pid space, the counter
# does not wrap during a run.
if [ -w /proc/sys/kernel/pid_max ] && [ "$(cat /proc/sys/kernel/pid_max)" -lt 4194304 ]; then
    echo 4194304 > /proc/sys/kernel/pid_max
fi
echo "kernel.pid_max = $(cat /proc/sys/kernel/pid_max)"

cargo build --all-targets
# Lints (the workspace [lints] table: clippy::undocumented_unsafe_blocks and
# the rest), every member crate and target.
cargo clippy --workspace --all-targets -- -D warnings
# The no_std blobs are built by build/blob.rs with rustc, outside cargo:
# the same lints through clippy-driver (metadata only, nothing linked).
blobcheck=$(mktemp -d)
for root in parasite/src/lib.rs parasite/src/restorer.rs; do
    clippy-driver --edition=2024 --crate-type=staticlib --crate-name="blob_$(basename "$root" .rs)" \
        -C panic=abort -D warnings -D clippy::undocumented_unsafe_blocks \
        --emit=metadata --out-dir "$blobcheck" "$root"
done
rm -rf "$blobcheck"
cargo test --no-fail-fast -- --test-threads="$(nproc)"
