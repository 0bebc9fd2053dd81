"""A Dask shard's own TCP link to the client, apart from the scheduler (issue 39).

Through a Dask scheduler, a shard's deltas wait in the scheduler's queue: on a busy machine
the scheduler fell behind, the client heard nothing from a live shard for its lease and gave
it up for lost. So each shard opens a TCP connection straight to the client, which listens on
the address it reaches the scheduler from, and its messages (deltas, its error, its final
report, a beat a second) go that way; the client's commands and its own beat come back on it.
The scheduler still carries the same commands and the lease, and a shard that cannot connect
(a firewall between the workers and the client) sends by the scheduler's queue as before.

The wire, both ways after the greeting: frames of a 4-byte big-endian length and a pickle
(shard -> client), single bytes (client -> shard: BEAT, or a command). The greeting proves the
shard holds the run's key: the client sends a nonce, the shard its HMAC-SHA256 under the key
(given to it in its task, through Dask) and its index. Nothing is unpickled before that. Every
blocking call has a timeout. The HMAC covers the greeting only: against a scheduler reached
over TLS (`tls://`), where the path is not trusted, there is no direct link (use_direct).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import pickle
import secrets
import select
import socket
import threading
import time
from collections.abc import Callable

from .shards import Command, ReportSink, ShardMessage

log = logging.getLogger("esmeperf")

DIRECT_TIMEOUT = 5.0  # seconds a connect, a greeting, a frame or a send may take
POLL_S = 0.5  # how often a reader looks at whether its link is closing
BEAT_S = 1.0  # the client's beat on every link, from its own thread
MAX_FRAME = 256 << 20  # bytes: a frame longer than this is a broken link, not a message
NONCE = 16
BEAT = b"\x00"  # the client's beat: it is alive (the shard's lease)
COMMANDS = {Command.STOP: b"s", Command.CLOSE: b"c", Command.FORCE: b"f"}
_BY_BYTE = {code: command for command, code in COMMANDS.items()}


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    """`size` bytes from `sock` (under its timeout); ConnectionError at the end of the stream."""
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("the link was closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _proof(key: bytes, nonce: bytes) -> bytes:
    return hmac.new(key, nonce, hashlib.sha256).digest()


def client_address(scheduler: str) -> str:
    """The address this host reaches `scheduler` (tcp://HOST:PORT) from: the workers, which
    reach the scheduler, are most likely to reach the client there too."""
    host_port = scheduler.split("://", 1)[-1]
    host, _, port = host_port.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:  # no packet is sent
        try:
            probe.connect((host, int(port or 0) or 9))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


class ClientEnd:
    """The client's side: it listens, greets each shard, merges what they send into the sink,
    sends them its beat (BEAT_S, from its own thread: a slow scheduler holds up no beat) and
    its commands. A link that brought nothing for `silent_s` (a shard sends a beat a second)
    is dropped, as a host gone without a word leaves it."""

    def __init__(self, host: str, sink: ReportSink, where: Callable[[int], str],
                 silent_s: float) -> None:
        self.key = secrets.token_bytes(32)
        self._sink, self._where, self._silent_s = sink, where, silent_s
        self._server = socket.create_server((host, 0), family=socket.AF_INET6 if ":" in host
                                            else socket.AF_INET)
        self._server.settimeout(POLL_S)
        self.address: tuple[str, int] = self._server.getsockname()[:2]
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._shards: dict[int, socket.socket] = {}  # index -> its link, once greeted
        self._greeted: set[int] = set()  # every shard that linked, even if its link broke
        threading.Thread(target=self._accept, name="dask-direct", daemon=True).start()

    def linked(self, index: int) -> bool:
        """Whether shard `index`'s link is up now."""
        with self._lock:
            return index in self._shards

    def any_linked(self) -> bool:
        with self._lock:
            return bool(self._shards)

    def greeted(self, index: int) -> bool:
        """Whether shard `index` linked up (its messages came this way, at least at first)."""
        with self._lock:
            return index in self._greeted

    def _accept(self) -> None:
        next_beat = time.monotonic() + BEAT_S
        while not self._closed.is_set():
            if time.monotonic() >= next_beat:
                next_beat += BEAT_S
                self.send(BEAT)
            try:
                sock, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(sock,), name="dask-direct-shard",
                             daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            sock.settimeout(DIRECT_TIMEOUT)
            try:
                nonce = secrets.token_bytes(NONCE)
                sock.sendall(nonce)
                hello = _recv_exactly(sock, 32 + 4)
            except OSError as exc:
                log.warning("a shard's direct link failed in its greeting: %s", exc)
                return
            if not hmac.compare_digest(hello[:32], _proof(self.key, nonce)):
                log.warning("a connection to the shards' direct link without the run's key: "
                            "closed")
                return
            index = int.from_bytes(hello[32:], "big")
            with self._lock:
                self._shards[index] = sock
                self._greeted.add(index)
            log.debug("shard %d: direct link up", index)
            try:
                self._read(sock, index)
            except Exception as exc:  # noqa: BLE001 - a broken link; the scheduler's path stays
                if not self._closed.is_set():
                    log.warning("shard %d: its direct link broke (%s); its messages go by the "
                                "scheduler", index, exc)
            finally:
                with self._lock:
                    if self._shards.get(index) is sock:  # not a newer link of the same shard
                        del self._shards[index]

    def _read(self, sock: socket.socket, index: int) -> None:
        heard = time.monotonic()
        while True:
            ready, _, _ = select.select([sock], [], [], POLL_S)
            if self._closed.is_set():
                return  # sealed: nothing more is merged
            if not ready:
                if time.monotonic() - heard > self._silent_s:
                    raise TimeoutError(f"nothing for {self._silent_s:g} s")
                continue
            size = int.from_bytes(_recv_exactly(sock, 4), "big")
            if size > MAX_FRAME:
                raise ValueError(f"a frame of {size} bytes")
            message = pickle.loads(_recv_exactly(sock, size))
            heard = time.monotonic()
            if self._closed.is_set():
                return
            self._sink.accept(message, where=self._where(index))

    def send(self, code: bytes) -> None:
        """A beat or a command to every linked shard (best effort: a shard whose link broke
        has the scheduler's copy)."""
        with self._lock:
            links = list(self._shards.items())
        for index, sock in links:
            try:
                sock.sendall(code)
            except OSError as exc:
                log.debug("shard %d: direct send failed: %s", index, exc)

    def command(self, command: Command) -> None:
        self.send(COMMANDS[command])

    def close(self) -> None:
        """No more merging from here on (the caller seals the results after this)."""
        self._closed.set()
        self._server.close()


class ShardEnd:
    """A shard's side: it connects and greets in a thread of its own (a firewall that drops
    the packets must not hold up the shard's start); until then, and once the link breaks,
    `send` returns False and the caller sends by the scheduler. What the client sends comes to
    `on_beat` and `on_command` from the same thread."""

    def __init__(self, address: tuple[str, int], key: bytes, index: int,
                 on_beat: Callable[[], None], on_command: Callable[[Command], None]) -> None:
        self.index = index
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._closed = False
        self.tried = threading.Event()  # the connect and greeting are over, either way
        threading.Thread(target=self._run, args=(address, key, on_beat, on_command),
                         name=f"shard-{index}-direct", daemon=True).start()

    @property
    def up(self) -> bool:
        return self._sock is not None

    def send(self, message: ShardMessage) -> bool:
        if self._sock is None:  # not up (yet, or any more): no pickling for nothing
            return False
        data = pickle.dumps(message)
        with self._lock:
            if self._sock is None:
                return False
            try:
                self._sock.sendall(len(data).to_bytes(4, "big") + data)
                return True
            except OSError as exc:
                log.warning("shard %d: the direct link broke (%s): its messages go by the "
                            "scheduler from now on", self.index, exc)
                self._drop()
                return False

    def _run(self, address: tuple[str, int], key: bytes, on_beat: Callable[[], None],
             on_command: Callable[[Command], None]) -> None:
        try:
            sock = self._connect(address, key)
        finally:
            self.tried.set()
        if sock is None:
            return
        try:
            self._read(sock, on_beat, on_command)
        finally:
            with self._lock:
                if self._sock is sock:  # the client closed it, or it broke: nothing goes there
                    self._drop()

    def _connect(self, address: tuple[str, int], key: bytes) -> socket.socket | None:
        """The greeted link, now this shard's; None if it cannot be had."""
        try:
            sock = socket.create_connection(address, timeout=DIRECT_TIMEOUT)
        except OSError as exc:
            log.warning("shard %d: no direct link to the client at %s:%s (%s): its messages go "
                        "by the scheduler", self.index, *address, exc)
            return None
        try:
            nonce = _recv_exactly(sock, NONCE)
            sock.sendall(_proof(key, nonce) + self.index.to_bytes(4, "big"))
        except OSError as exc:
            sock.close()
            log.warning("shard %d: the direct link's greeting failed (%s): its messages go by "
                        "the scheduler", self.index, exc)
            return None
        with self._lock:
            if self._closed:
                sock.close()
                return None
            self._sock = sock
        return sock

    def _read(self, sock: socket.socket, on_beat: Callable[[], None],
              on_command: Callable[[Command], None]) -> None:
        while self._sock is sock:
            try:
                ready, _, _ = select.select([sock], [], [], POLL_S)
                data = sock.recv(64) if ready else b""
            except (OSError, ValueError):
                return
            if ready and not data:
                return  # the client closed it
            for code in data:
                if bytes([code]) == BEAT:
                    on_beat()
                elif (command := _BY_BYTE.get(bytes([code]))) is not None:
                    on_command(command)

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop()


def use_direct(scheduler: str) -> bool:
    """Whether shards get a direct link: not against a scheduler reached over TLS, whose
    network the run does not trust (the link is plain TCP; its HMAC covers only the greeting)."""
    return not scheduler.startswith("tls://")
