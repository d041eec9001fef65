"""Reachability probes for the lab, run inside VM namespaces (stdlib only).

    probe.py serve NAME tcp:PORT udp:PORT ...   # echo servers; prints "listening"
    probe.py check tcp|udp HOST PORT [SRC_IP]   # one request; prints the server's NAME, exit 0
                                                # (exit 1: no answer within 2 s)
    probe.py stream HOST PORT                   # one TCP connection, a request every 0.1 s;
                                                # prints "ok N" per answer, "stalled" and exits
                                                # when one takes more than 2 s

The echo answers with the server's NAME, so a test knows which VM answered
(a VIP moving between two VMs).
"""
import socket
import sys
import threading
import time

TIMEOUT = 2.0


def serve(name, specs):
    answer = name.encode()
    socks = []
    for spec in specs:
        proto, port = spec.split(":")
        if proto == "tcp":
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", int(port)))
            s.listen(64)
            socks.append(threading.Thread(target=_tcp_loop, args=(s, answer), daemon=True))
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("0.0.0.0", int(port)))
            socks.append(threading.Thread(target=_udp_loop, args=(s, answer), daemon=True))
    for t in socks:
        t.start()
    print("listening", flush=True)
    while True:
        time.sleep(3600)


def _tcp_loop(s, answer):
    while True:
        conn, _ = s.accept()
        threading.Thread(target=_tcp_conn, args=(conn, answer), daemon=True).start()


def _tcp_conn(conn, answer):
    try:
        while conn.recv(64):
            conn.sendall(answer)
    except OSError:
        pass
    finally:
        conn.close()


def _udp_loop(s, answer):
    while True:
        _data, peer = s.recvfrom(64)
        s.sendto(answer, peer)


def check(proto, host, port, src=None):
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind)
    s.settimeout(TIMEOUT)
    try:
        if src:
            s.bind((src, 0))
        if proto == "tcp":
            s.connect((host, int(port)))
            s.sendall(b"?")
        else:
            s.sendto(b"?", (host, int(port)))
        print(s.recv(64).decode(), flush=True)
        return 0
    except OSError as e:
        print(f"no answer: {e}", file=sys.stderr)
        return 1
    finally:
        s.close()


def stream(host, port):
    s = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    n = 0
    try:
        while True:
            s.sendall(b"?")
            if not s.recv(64):
                break
            n += 1
            print(f"ok {n}", flush=True)
            time.sleep(0.1)
    except OSError:
        pass
    print("stalled", flush=True)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "serve":
        serve(sys.argv[2], sys.argv[3:])
    elif cmd == "check":
        sys.exit(check(*sys.argv[2:6]))
    else:
        stream(sys.argv[2], sys.argv[3])
