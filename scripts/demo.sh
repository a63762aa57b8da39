#!/usr/bin/env bash
# The live demo: builds criu, starts a counting process, checkpoints it
# (the process is gone), restores it from the images, and shows it counting
# on from where it stopped. Then decodes an image with our crit.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins
bin=$PWD/target/release
work=$(mktemp -d /tmp/criu-demo.XXXXXX)
counter=$work/counter

echo "== criu --version"
"$bin/criu" --version
echo "== criu check"
"$bin/criu" check
echo

# A single process counting in a file, in its own session, fds on /dev/null.
setsid python3 -c "
import os, time
open('$work/pid', 'w').write(str(os.getpid()))
n = 0
while True:
    n += 1
    open('$counter', 'w').write(str(n))
    time.sleep(0.1)
" </dev/null >/dev/null 2>&1 &
disown
sleep 1
pid=$(cat "$work/pid")
echo "== counting process $pid: counter at $(cat "$counter")"

mkdir -p "$work/images"
echo "== criu dump -t $pid -D $work/images"
"$bin/criu" dump -t "$pid" -D "$work/images" -v4 -o dump.log
before=$(cat "$counter")
sleep 0.5
echo "   dumped at $before; process gone: $(kill -0 "$pid" 2>/dev/null && echo no || echo yes); counter still $(cat "$counter")"
ls "$work/images"

echo "== criu restore -d -D $work/images"
if "$bin/criu" restore -d -D "$work/images" -v4 -o restore.log; then
    sleep 1
    echo "   restored as pid $pid; counter now $(cat "$counter") (was $before at dump)"
    kill "$pid"
else
    echo "   restore failed; see $work/images/restore.log"
fi

echo "== crit show $work/images/pstree.img"
"$bin/crit" show "$work/images/pstree.img"
