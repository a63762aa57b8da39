#!/usr/bin/env bash
# The demo: builds criu and shows what works today. The live checkpoint and
# restore of a running process joins this script as the dump and restore
# engines land (issues 3 and 4).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins
bin=target/release

echo "== criu --version"
$bin/criu --version
echo
echo "== criu check (probes this kernel)"
$bin/criu check || true
echo
fx=../shared/fixtures/criu-4.2/python-timer
if [ -d "$fx" ]; then
    echo "== crit show: a real CRIU 4.2 image, decoded by our image layer"
    $bin/crit show "$fx/pipes-data.img"
    echo
    echo "== crit show $fx/pagemap-30151.img (first lines)"
    $bin/crit show "$fx/pagemap-30151.img" | head -20
fi
