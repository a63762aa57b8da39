"""One RPC request to `criu service`, sent by whoever runs this script
(tests/service_auth.rs runs it as an unprivileged user).

argv: SOCKET REQUEST_HEX [DIR...]. Each DIR is opened (O_RDONLY |
O_DIRECTORY) and moved to fd 100, 101, ... (the request's images_dir_fd /
work_dir_fd name those), then the request is sent and the response
printed as hex (an empty line when the service closed the connection).
Exit code 3, with the reason on stderr, when a DIR can't be opened."""

import os
import socket
import sys

path, req = sys.argv[1], bytes.fromhex(sys.argv[2])
for i, d in enumerate(sys.argv[3:]):
    try:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        print(f"can't open {d}: {e}", file=sys.stderr)
        sys.exit(3)
    os.dup2(fd, 100 + i, inheritable=False)
    os.close(fd)
sk = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
sk.connect(path)
sk.send(req)
print(sk.recv(1 << 20).hex())
