"""The WebSocket handshake reads the server's 101 response in one or two recv() calls
(issue 38), not a byte at a time as websocket-client does on a socket of its own; the bytes
behind it stay for the frame reader. Against the embedded target, on a real socket."""

from __future__ import annotations

import socket

from esmeperf.transport import connection
from esmeperf.transport.connection import Connection


class CountingSocket(socket.socket):
    """A real socket that counts the reads made on it."""

    reads = 0

    def recv(self, *args, **kwargs):  # type: ignore[override]
        CountingSocket.reads += 1
        return super().recv(*args, **kwargs)


def test_the_handshake_takes_one_or_two_reads(esme, monkeypatch):
    opened: list[CountingSocket] = []
    plain = connection._tcp_connect

    def counting_connect(host: str, port: int, timeout: float) -> socket.socket:
        sock = plain(host, port, timeout)
        counted = CountingSocket(sock.family, sock.type, fileno=sock.detach())
        counted.settimeout(timeout)
        opened.append(counted)
        return counted

    monkeypatch.setattr(connection, "_tcp_connect", counting_connect)
    _, token = esme.sign_up()
    CountingSocket.reads = 0
    conn = Connection.open(esme.config["messenger_ws_url"], token, 5.0, newline=False)
    try:
        assert len(opened) == 1 and conn.sock is opened[0]
        assert 1 <= CountingSocket.reads <= 2, CountingSocket.reads
        conn.send('{"type":"get_chats","payload":""}')
        assert conn.recv(5.0) == '{"type":"chats","payload":{"chats":[]}}\n'
    finally:
        conn.abort()
