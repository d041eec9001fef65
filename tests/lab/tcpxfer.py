"""A TCP transfer for the lab, run inside VM namespaces (stdlib only).

    tcpxfer.py server PORT                 # prints "listening", then the JSON summary
    tcpxfer.py client HOST PORT NBYTES     # sends NBYTES of reproducible data

Both sides print {"bytes": n, "sha256": hex} so a test can compare what was
sent with what arrived.
"""
import hashlib
import json
import socket
import sys
import time

CHUNK = 64 * 1024


def pattern(nbytes):
    """Reproducible, incompressible-looking data."""
    block = hashlib.sha256(b"quantum-lab").digest() * (CHUNK // 32)
    sent = 0
    i = 0
    while sent < nbytes:
        piece = bytes([i % 251]) + block[1:]
        piece = piece[:nbytes - sent]
        sent += len(piece)
        i += 1
        yield piece


def server(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(1)
    print("listening", flush=True)
    conn, _ = s.accept()
    h, n = hashlib.sha256(), 0
    while True:
        data = conn.recv(CHUNK)
        if not data:
            break
        h.update(data)
        n += len(data)
    conn.close()
    print(json.dumps({"bytes": n, "sha256": h.hexdigest()}), flush=True)


def client(host, port, nbytes, connect_timeout=10.0):
    deadline = time.monotonic() + connect_timeout
    while True:
        try:
            s = socket.create_connection((host, port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    s.settimeout(60)
    h, n = hashlib.sha256(), 0
    for piece in pattern(nbytes):
        s.sendall(piece)
        h.update(piece)
        n += len(piece)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    s.close()
    print(json.dumps({"bytes": n, "sha256": h.hexdigest()}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]))
    else:
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
