#!/usr/bin/env python3
"""Loopback TCP proxy that makes the bridge a non-local client of a gateway, for pairing tests:
it adds `X-Forwarded-For: 203.0.113.7` to the first request head of each connection (the
WebSocket upgrade) and then copies bytes both ways. With `gateway.trustedProxies: ["127.0.0.1"]`
the gateway treats the connection as remote (reference/openclaw-ws.md §4.2).
Usage: xff_proxy.py TARGET_PORT PORT_FILE   (listens on a free 127.0.0.1 port, written to PORT_FILE)"""
import os, socket, sys, threading

target, port_file = int(sys.argv[1]), sys.argv[2]

def pipe(a, b):
    try:
        while (d := a.recv(65536)):
            b.sendall(d)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass

def handle(c):
    u = socket.create_connection(("127.0.0.1", target))
    head = b""
    while b"\r\n\r\n" not in head:
        d = c.recv(65536)
        if not d: c.close(); u.close(); return
        head += d
    i = head.index(b"\r\n") + 2
    u.sendall(head[:i] + b"X-Forwarded-For: 203.0.113.7\r\n" + head[i:])
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
    pipe(c, u)

srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(16)
with open(port_file + ".tmp", "w") as f: f.write(str(srv.getsockname()[1]))
os.replace(port_file + ".tmp", port_file)
while True:
    c, _ = srv.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
