#!/usr/bin/env python3
"""Start, seed and stop ESME's real organizer and participant APIs, built outside this repository.

    python3 contrib/esme-real/esme_real.py up ESME [--workdir DIR] [--config-out F] [--ready-file F]
    python3 contrib/esme-real/esme_real.py check ESME     # up, sign-up + chat request + queue, down
    python3 contrib/esme-real/esme_real.py rest-run ESME [--out DIR] -- ESMEPERF-ARGS
    python3 contrib/esme-real/esme_real.py queue-depth --ready-file F

ESME is what you built or deployed from ESME's public repository: `--organizer-api DIR` (the
organizer API's built directory), `--participant-api PATH` (the participant API's binary) and
`--participant-schema PATH` (its SQL schema, from your checkout); or, for `check` and `rest-run`,
a running ESME's `--config config.json`.

Standard library only.  Needs root to start the APIs: both hard-code port 8080 on every
interface, so each runs in its own network namespace that holds only a loopback interface, and a
small relay (the `_relay` subcommand) carries 127.0.0.1:<port> in the host namespace to
127.0.0.1:8080 inside it.  See README.md beside this file.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ctypes
import fcntl
import functools
import http.client
import json
import os
import pwd
import secrets
import select
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PROG = "esme-real"
HERE = Path(__file__).resolve().parent
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
MESSENGER_PLACEHOLDER = "ws://127.0.0.1:9/messenger-api-not-running"

# Ports the unchanged services use inside their private network namespaces.
SERVICE_PORT = 8080  # both APIs: app.listen(8080) / Addr ":8080"
NS_AMQP_PORT = 5672  # the participant namespace's view of RabbitMQ
NS_ORGANIZER_PORT = 8000  # the participant namespace's view of the organizer API

RELAY_BACKLOG = 1024

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

class Failure(Exception):
    """A one-line reason to stop with exit code 1."""


class Terminated(Exception):
    """SIGTERM or SIGHUP arrived: stop like Ctrl-C."""


def log(message: str) -> None:
    """Print a progress line on stderr."""
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Linux primitives through ctypes (Python 3.11 has no os.setns/os.unshare)

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    """Raise OSError with errno when a libc call failed."""
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open on fd."""
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


def unshare_net() -> None:
    """Give the calling thread a new, empty network namespace."""
    _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")


def bring_loopback_up() -> None:
    """Set IFF_UP on lo in the current network namespace (a new namespace starts with lo down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def child_setup(user: str | None = None) -> Callable[[], None]:
    """Return a preexec_fn: drop to `user` if given, then die with the parent (SIGTERM)."""
    account = pwd.getpwnam(user) if user else None

    def setup() -> None:
        if account is not None:
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
        # After setuid: a change of user clears the parent-death signal.
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return setup


# --------------------------------------------------------------------------------------------------
# Small helpers


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a dotenv file as ESME writes them (KEY=value, optional double quotes)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        values[key.strip()] = value
    return values


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """Write a dotenv file that godotenv reads back verbatim (every value double-quoted)."""
    lines = []
    for key, value in values.items():
        if '"' in value or "\\" in value or "\n" in value:
            raise Failure(
                f"cannot write {key} to {path.name}: the value holds a quote, backslash or newline"
            )
        lines.append(f'{key}="{value}"')
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def tail(path: Path | None, lines: int = 12) -> str:
    """Return the last lines of a log file, indented, for an error report."""
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in text)


def require(condition: bool, message: str) -> None:
    """Fail with message unless condition holds."""
    if not condition:
        raise Failure(message)


# --------------------------------------------------------------------------------------------------
# A minimal AMQP 0-9-1 client: log in and count one queue's messages (passive queue.declare)


class AmqpError(Exception):
    """The broker refused or closed the connection."""


def _shortstr(text: str) -> bytes:
    """Encode an AMQP short string."""
    data = text.encode()
    return struct.pack("B", len(data)) + data


def _frame(channel: int, class_id: int, method_id: int, args: bytes = b"") -> bytes:
    """Encode one AMQP method frame."""
    payload = struct.pack(">HH", class_id, method_id) + args
    return struct.pack(">BHI", 1, channel, len(payload)) + payload + b"\xce"


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    """Read exactly size bytes or raise AmqpError on EOF."""
    chunks, left = [], size
    while left:
        chunk = sock.recv(left)
        if not chunk:
            raise AmqpError("connection closed by the broker")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _recv_method(sock: socket.socket) -> tuple[int, int, bytes]:
    """Return (class, method, arguments) of the next method frame, skipping heartbeats."""
    while True:
        frame_type, _channel, size = struct.unpack(">BHI", _recv_exact(sock, 7))
        payload = _recv_exact(sock, size + 1)[:-1]
        if frame_type == 1:
            class_id, method_id = struct.unpack(">HH", payload[:4])
            return class_id, method_id, payload[4:]


def _expect(sock: socket.socket, class_id: int, method_id: int) -> bytes:
    """Read a method frame; raise AmqpError with the broker's reply text if it closes instead."""
    got_class, got_method, args = _recv_method(sock)
    if (got_class, got_method) in ((10, 50), (20, 40)):  # connection.close / channel.close
        code = struct.unpack(">H", args[:2])[0]
        text = args[3 : 3 + args[2]].decode(errors="replace")
        raise AmqpError(f"{code} {text}")
    if (got_class, got_method) != (class_id, method_id):
        raise AmqpError(f"expected method {class_id}.{method_id}, got {got_class}.{got_method}")
    return args


def amqp_queue_depth(url: str, queue: str | None, timeout: float = 5.0) -> int | None:
    """Log in to the broker; return the queue's message count (None: no such queue, or no queue)."""
    parts = urllib.parse.urlsplit(url)
    user, password = (
        urllib.parse.unquote(parts.username or ""),
        urllib.parse.unquote(parts.password or ""),
    )
    vhost = urllib.parse.unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    with socket.create_connection((parts.hostname, parts.port or 5672), timeout=timeout) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        _expect(sock, 10, 10)  # connection.start
        response = f"\0{user}\0{password}".encode()
        sock.sendall(
            _frame(
                0,
                10,
                11,
                struct.pack(">I", 0)
                + _shortstr("PLAIN")
                + struct.pack(">I", len(response))
                + response
                + _shortstr("en_US"),
            )
        )
        channel_max, frame_max, _heartbeat = struct.unpack(">HIH", _expect(sock, 10, 30)[:8])
        sock.sendall(_frame(0, 10, 31, struct.pack(">HIH", channel_max, frame_max, 0)))
        sock.sendall(_frame(0, 10, 40, _shortstr(vhost) + _shortstr("") + b"\x00"))
        _expect(sock, 10, 41)
        sock.sendall(_frame(1, 20, 10, _shortstr("")))
        _expect(sock, 20, 11)
        count: int | None = None
        if queue is not None:
            # passive=1: only ask; never create the queue that participant-api declares itself.
            sock.sendall(
                _frame(
                    1,
                    50,
                    10,
                    struct.pack(">H", 0) + _shortstr(queue) + b"\x01" + struct.pack(">I", 0),
                )
            )
            try:
                args = _expect(sock, 50, 11)
            except AmqpError as error:
                if not str(error).startswith("404"):
                    raise
            else:
                name_length = args[0]
                count = struct.unpack(">I", args[1 + name_length : 5 + name_length])[0]
        with contextlib.suppress(OSError, AmqpError):
            sock.sendall(
                _frame(0, 10, 50, struct.pack(">H", 200) + _shortstr("") + struct.pack(">HH", 0, 0))
            )
            _recv_method(sock)
        return count


# --------------------------------------------------------------------------------------------------
# The relay: holds the network namespaces and carries TCP between them (`esme_real.py _relay`)


@dataclass
class Route:
    """Accept on `listen`, connect to `connect`: (namespace or None for the host's, host, port)."""

    listen: tuple[str | None, str, int]
    connect: tuple[str | None, str, int]


class _Pipe(asyncio.Protocol):
    """One side of a relayed connection; forwards bytes, EOF and back-pressure to its peer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.pending: list[bytes] = []
        self.got_eof = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def link(self, peer: _Pipe) -> None:
        """Join with peer and flush what arrived before it existed."""
        self.peer = peer
        assert peer.transport is not None
        for chunk in self.pending:
            peer.transport.write(chunk)
        self.pending.clear()
        if self.got_eof and peer.transport.can_write_eof():
            peer.transport.write_eof()
        if self.closed:
            peer.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            self.pending.append(data)

    def eof_received(self) -> bool:
        self.got_eof = True
        if (
            self.peer is not None
            and self.peer.transport is not None
            and self.peer.transport.can_write_eof()
        ):
            self.peer.transport.write_eof()
        return True  # keep the other direction open (HTTP clients may half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    # Back-pressure: when our outgoing buffer fills, stop reading from the peer.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class Relay:
    """Creates network namespaces and relays TCP between them, in one single-threaded process."""

    def __init__(self, namespaces: Sequence[str]) -> None:
        self.host_ns = os.open("/proc/self/ns/net", os.O_RDONLY)
        self.ns_fds: dict[str | None, int] = {None: self.host_ns}
        for name in namespaces:
            unshare_net()
            bring_loopback_up()
            self.ns_fds[name] = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            setns(self.host_ns)

    def socket_in(self, namespace: str | None) -> socket.socket:
        """Create a TCP socket in a namespace (a socket keeps the namespace it was created in)."""
        if namespace is None:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        setns(self.ns_fds[namespace])
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            setns(self.host_ns)

    async def serve(self, routes: Sequence[Route]) -> list[asyncio.Server]:
        """Start a listener per route."""
        loop = asyncio.get_running_loop()
        servers: list[asyncio.Server] = []
        for route in routes:
            namespace, host, port = route.listen
            listener = self.socket_in(namespace)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind((host, port))
            except OSError as error:
                where = f"namespace {namespace}" if namespace else "the host namespace"
                raise SystemExit(
                    f"relay: cannot listen on {host}:{port} in {where}: {error.strerror}"
                ) from None
            listener.setblocking(False)
            # A load test opens connections in bursts: a backlog like the services' own (node: 511).
            servers.append(
                await loop.create_server(
                    functools.partial(self._accepted, route), sock=listener, backlog=RELAY_BACKLOG
                )
            )
        return servers

    def _accepted(self, route: Route) -> _Pipe:
        """Protocol factory for an accepted connection: connect its peer in the background."""
        inbound = _Pipe()
        asyncio.get_running_loop().create_task(self._connect(route, inbound))
        return inbound

    async def _connect(self, route: Route, inbound: _Pipe) -> None:
        """Open the outbound side of a relayed connection and join the two."""
        loop = asyncio.get_running_loop()
        namespace, host, port = route.connect
        outbound_sock = self.socket_in(namespace)
        outbound_sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(outbound_sock, (host, port)), timeout=10)
            _, outbound = await loop.create_connection(_Pipe, sock=outbound_sock)
        except (OSError, TimeoutError):
            outbound_sock.close()
            if inbound.transport is not None:
                # The service is not (yet) listening: refuse like it would.
                inbound.transport.abort()
            return
        assert outbound.transport is not None
        if inbound.closed:
            outbound.transport.close()
            return
        inbound.link(outbound)
        outbound.link(inbound)


async def _relay_main(spec: dict[str, Any]) -> None:
    """Run the relay described by spec until stdin closes or SIGTERM arrives."""
    relay = Relay(spec["namespaces"])
    routes = [
        Route(
            (r["listen"][0], r["listen"][1], int(r["listen"][2])),
            (r["connect"][0], r["connect"][1], int(r["connect"][2])),
        )
        for r in spec["routes"]
    ]
    servers = await relay.serve(routes)
    namespaces = {name: f"/proc/{os.getpid()}/fd/{fd}" for name, fd in relay.ns_fds.items() if name}
    print(json.dumps({"namespaces": namespaces}), flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGINT, done.set)
    # The parent holds our stdin open; EOF means it is gone.
    loop.add_reader(
        sys.stdin.fileno(), lambda: done.set() if not os.read(sys.stdin.fileno(), 4096) else None
    )
    await done.wait()
    for server in servers:
        server.close()


def relay_command() -> int:
    """Entry point of the `_relay` subcommand: read a JSON spec line from stdin, then relay."""
    spec = json.loads(sys.stdin.readline())
    asyncio.run(_relay_main(spec))
    return 0


# --------------------------------------------------------------------------------------------------
# Processes


@dataclass
class Child:
    """A process started by the supervisor (leader of its own process group)."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path | None
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 15.0


@dataclass
class Supervisor:
    """Starts children in their own process groups and stops them all, newest first."""

    children: list[Child] = field(default_factory=list)

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path | None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        stdin: int | None = subprocess.DEVNULL,
        stdout: int | None = None,
        stop_signal: int = signal.SIGTERM,
        stop_timeout: float = 15.0,
    ) -> Child:
        """Start argv with output to log_path (unless stdout is given)."""
        out = log_path.open("ab") if log_path is not None else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=stdin,
                stdout=stdout if stdout is not None else out,
                stderr=out,
                start_new_session=True,
                preexec_fn=child_setup(user),
            )
        except FileNotFoundError:
            raise Failure(f"cannot start {name}: {argv[0]} not found") from None
        finally:
            if log_path is not None:
                out.close()  # type: ignore[union-attr]
        child = Child(name, proc, log_path, stop_signal, stop_timeout)
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        """Stop every child: its signal, a bounded wait, then SIGKILL to its process group."""
        while self.children:
            child = self.children.pop()
            pid = child.proc.pid
            if child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, child.stop_signal)
                try:
                    child.proc.wait(timeout=child.stop_timeout)
                except subprocess.TimeoutExpired:
                    log(
                        f"{child.name} (pid {pid}) did not stop within "
                        f"{child.stop_timeout:.0f} s: killing it"
                    )
            # Helpers the leader started (postgres backends, Erlang port programs) share its group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=5)


def wait_until(
    what: str, probe: Callable[[], bool], *, timeout: float, child: Child | None = None
) -> float:
    """Poll probe until it returns True; fail if child exits or timeout passes. Returns seconds."""
    start = time.monotonic()
    delay = 0.05
    while True:
        if child is not None and child.proc.poll() is not None:
            print(tail(child.log_path), file=sys.stderr)
            raise Failure(
                f"{what}: {child.name} exited with code {child.proc.returncode} "
                f"before it was ready "
                f"(log: {child.log_path})"
            )
        with contextlib.suppress(Exception):
            if probe():
                return time.monotonic() - start
        if time.monotonic() - start > timeout:
            if child is not None:
                print(tail(child.log_path), file=sys.stderr)
            raise Failure(
                f"{what} not ready within {timeout:.0f} s"
                + (f" (log: {child.log_path})" if child is not None else "")
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def http_request(
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """Send one JSON request; return (status, decoded body or None)."""
    parts = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port, timeout=timeout
    )
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        connection.request(
            method, path, body=None if body is None else json.dumps(body), headers=headers
        )
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(raw) if raw.strip() else None
    except json.JSONDecodeError:
        return response.status, raw.decode(errors="replace")


def accepts_tcp(port: int) -> bool:
    """Probe: something accepts TCP connections on 127.0.0.1:port."""
    with socket.create_connection(("127.0.0.1", port), timeout=1.0):
        return True


def answers_http(base_url: str, path: str) -> Callable[[], bool]:
    """Probe: the URL answers with any HTTP status (the relay accepts even while it is down)."""
    return lambda: http_request(base_url, "GET", path, timeout=2.0)[0] > 0


# --------------------------------------------------------------------------------------------------
# The stack


@dataclass
class Options:
    """What `up` was asked for."""

    organizer_api: Path
    organizer_env: Path
    participant_api: Path
    participant_env: Path
    participant_schema: Path
    workdir: Path | None
    keep_workdir: bool
    config_out: Path | None
    ready_file: Path | None
    organizer_port: int
    participant_port: int
    postgres_port: int
    amqp_port: int
    start_timeout: float
    organizer_email: str
    organizer_password: str | None


@dataclass
class Stack:
    """Everything `up` started and what a caller needs to use it."""

    options: Options
    supervisor: Supervisor = field(default_factory=Supervisor)
    workdir: Path | None = None
    own_workdir: bool = False
    ports: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    ready: dict[str, Any] = field(default_factory=dict)

    # ---- lifecycle

    def up(self) -> dict[str, Any]:
        """Start and seed everything; return the ready document."""
        opts = self.options
        self._preflight()
        t0 = time.monotonic()
        self._make_workdir()
        assert self.workdir is not None
        self.ports = ports = {
            "organizer": opts.organizer_port or free_port(),
            "participant": opts.participant_port or free_port(),
            "postgres": opts.postgres_port or free_port(),
            "amqp": opts.amqp_port or free_port(),
            "erlang_dist": free_port(),
            "epmd": free_port(),
        }
        org_env = read_env_file(opts.organizer_env)
        part_env = read_env_file(opts.participant_env)
        db_user, db_password = org_env["DB_USER"], org_env["DB_PASSWORD"]
        queue_user, queue_password = self._queue_credentials(part_env["QUEUE_DSN"])

        namespaces = self._start_relay(ports)
        socket_dir = self._start_postgres(ports["postgres"], db_user, db_password)
        rabbit = self._start_rabbitmq(ports, queue_user, queue_password)
        amqp_url = (
            f"amqp://{urllib.parse.quote(queue_user)}:{urllib.parse.quote(queue_password)}"
            f"@127.0.0.1:{ports['amqp']}/"
        )
        self._wait_postgres(socket_dir, ports["postgres"], db_user, db_password)
        self._create_databases(socket_dir, ports["postgres"], db_user, db_password)
        organizer_url = f"http://127.0.0.1:{ports['organizer']}"
        self._start_organizer(namespaces["organizer"], socket_dir, ports["postgres"], org_env)
        self._wait_rabbitmq(rabbit, amqp_url)
        self.timings["start"] = time.monotonic() - t0

        t2 = time.monotonic()
        seed = Seeder(organizer_url, org_env, opts.organizer_email, opts.organizer_password).run()
        self.timings["seed"] = time.monotonic() - t2

        t3 = time.monotonic()
        participant_url = f"http://127.0.0.1:{ports['participant']}"
        self._start_participant(
            namespaces["participant"],
            socket_dir,
            ports["postgres"],
            part_env,
            org_env,
            queue_user,
            queue_password,
        )
        self.timings["start"] += time.monotonic() - t3
        self.timings["total"] = time.monotonic() - t0

        config = {
            "event_id": seed["event_id"],
            "messenger_ws_url": MESSENGER_PLACEHOLDER,
            "organizer_api_url": organizer_url,
            "organizer_email": seed["organizer_email"],
            "organizer_password": seed["organizer_password"],
            "participant_api_url": participant_url,
        }
        queue = f"chats_agency_{seed['agency_id']}"
        rabbitmqctl = self._rabbitmqctl_command(rabbit)
        self.ready = {
            **config,
            "esme_real": {
                "pid": os.getpid(),
                "workdir": str(self.workdir),
                "logs": str(self.workdir / "logs"),
                "messenger": "not running: ESME's messenger API needs MongoDB, which no "
                "reachable registry provides",
                "agency_id": seed["agency_id"],
                "organizer_role": seed["organizer_role"],
                "super_admin": {
                    "email": org_env["SUPER_ADMIN_EMAIL"],
                    "password": org_env["SUPER_ADMIN_PASSWORD"],
                },
                "organizer_api_key": org_env["ORGANIZER_API_KEY"],
                "participant_api_key": part_env["PARTICIPANT_API_KEY"],
                "chat_request_queue": queue,
                "amqp_url": amqp_url,
                "rabbitmq_node": rabbit["node"],
                "rabbitmqctl": rabbitmqctl,
                "queue_depth_command": [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "queue-depth",
                    "--amqp-url",
                    amqp_url,
                    "--queue",
                    queue,
                ],
                "postgres": {
                    "host": "127.0.0.1",
                    "port": ports["postgres"],
                    "socket_dir": str(socket_dir),
                    "user": db_user,
                    "password": db_password,
                    "databases": {"organizer": "esme_organizer", "participant": "esme_participant"},
                },
                "ports": ports,
                "timings_s": {k: round(v, 2) for k, v in self.timings.items()},
            },
        }
        return self.ready

    def down(self, failed: bool = False) -> None:
        """Stop every process and remove what `up` created."""
        self.supervisor.stop_all()
        if self.options.ready_file is not None and self.ready:
            with contextlib.suppress(FileNotFoundError):
                self.options.ready_file.unlink()
        if self.workdir is None:
            return
        if self.options.keep_workdir:
            log(f"kept {self.workdir}")
            return
        if failed:
            log("the logs named above go with the workdir; --keep-workdir keeps them")
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            for entry in self.workdir.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    # ---- steps

    def _preflight(self) -> None:
        """Fail early, in one line, on what is missing."""
        require(
            os.geteuid() == 0,
            "must run as root: it creates network namespaces for the two APIs, which both "
            "hard-code port 8080, and runs PostgreSQL as the postgres user",
        )
        opts = self.options
        for path, what in (
            (opts.organizer_api / "dist/src/main.js", "the organizer API's build"),
            (opts.organizer_env, "the organizer API's environment (--organizer-env)"),
            (opts.participant_env, "the participant API's environment (--participant-env)"),
            (opts.participant_schema, "the participant API's SQL schema"),
        ):
            require(path.is_file(), f"{what} not found at {path}")
        require(
            os.access(opts.participant_api, os.X_OK) and opts.participant_api.is_file(),
            f"the participant API's binary {opts.participant_api} is not an executable file",
        )
        for tool in ("nsenter", "psql", "node", "epmd"):
            require(shutil.which(tool) is not None, f"{tool} not found (README.md: what it needs)")
        require(bool(self._postgres_bin()), "PostgreSQL's initdb/postgres not found")
        require(
            (RABBITMQ_BIN / "rabbitmq-server").is_file(),
            f"{RABBITMQ_BIN / 'rabbitmq-server'} not found",
        )
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise Failure(
                "no 'postgres' user to run PostgreSQL as (Debian's postgresql package creates it)"
            ) from None

    @staticmethod
    def _postgres_bin() -> Path | None:
        """Return the newest /usr/lib/postgresql/N/bin that has initdb and postgres."""
        candidates = sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        )
        for directory in reversed(candidates):
            if (directory / "initdb").is_file() and (directory / "postgres").is_file():
                return directory
        return None

    def _make_workdir(self) -> None:
        """Create the run's directory (logs, PostgreSQL cluster, RabbitMQ node, env files)."""
        if self.options.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="esme-real-"))
            self.own_workdir = True
        else:
            # New or empty: everything in it is ours; a directory that existed stays on exit.
            self.workdir = self.options.workdir.resolve()
            self.own_workdir = not self.workdir.exists()
            self.workdir.mkdir(parents=True, exist_ok=True)
            require(not any(self.workdir.iterdir()), f"--workdir {self.workdir} is not empty")
        # The postgres user must reach its data and socket directories inside.
        self.workdir.chmod(0o711)
        (self.workdir / "logs").mkdir()

    @staticmethod
    def _queue_credentials(dsn: str) -> tuple[str, str]:
        """User and password from ESME's QUEUE_DSN (amqp://user:password@host:port)."""
        parts = urllib.parse.urlsplit(dsn)
        return urllib.parse.unquote(parts.username or "guest"), urllib.parse.unquote(
            parts.password or "guest"
        )

    def _start_relay(self, ports: dict[str, int]) -> dict[str, str]:
        """Start the relay; return {namespace name: path that nsenter --net accepts}."""
        assert self.workdir is not None
        routes = [
            Route(
                (None, "127.0.0.1", ports["organizer"]), ("organizer", "127.0.0.1", SERVICE_PORT)
            ),
            Route(
                (None, "127.0.0.1", ports["participant"]),
                ("participant", "127.0.0.1", SERVICE_PORT),
            ),
            Route(("participant", "127.0.0.1", NS_AMQP_PORT), (None, "127.0.0.1", ports["amqp"])),
            Route(
                ("participant", "127.0.0.1", NS_ORGANIZER_PORT),
                ("organizer", "127.0.0.1", SERVICE_PORT),
            ),
        ]
        spec = {
            "namespaces": ["organizer", "participant"],
            "routes": [{"listen": r.listen, "connect": r.connect} for r in routes],
        }
        child = self.supervisor.spawn(
            "relay",
            [sys.executable, str(Path(__file__).resolve()), "_relay"],
            log_path=self.workdir / "logs" / "relay.log",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stop_timeout=5,
        )
        assert child.proc.stdin is not None and child.proc.stdout is not None
        child.proc.stdin.write((json.dumps(spec) + "\n").encode())
        child.proc.stdin.flush()
        ready, _, _ = select.select([child.proc.stdout], [], [], 15)
        line = child.proc.stdout.readline() if ready else b""
        if not line:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=5)
            last = tail(child.log_path, 1).strip() or "no output"
            raise Failure(f"the relay did not start: {last}")
        return json.loads(line)["namespaces"]

    def _start_postgres(self, port: int, user: str, password: str) -> Path:
        """initdb a throwaway cluster, start it on 127.0.0.1:port; return its socket directory."""
        assert self.workdir is not None
        bin_dir = self._postgres_bin()
        assert bin_dir is not None
        base = self.workdir / "postgres"
        base.mkdir()
        socket_dir = base / "socket"
        socket_dir.mkdir()
        password_file = base / "password"
        password_file.write_text(password + "\n")
        postgres_user = pwd.getpwnam("postgres")
        for path in (base, socket_dir, password_file):
            os.chown(path, postgres_user.pw_uid, postgres_user.pw_gid)
        # ESME's compose file: user developer, scram-sha-256 for local and host connections.
        self._run_as_postgres(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(base / "data"),
                "-U",
                user,
                f"--pwfile={password_file}",
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            cwd=base,
        )
        password_file.unlink()
        self.supervisor.spawn(
            "postgres",
            [
                str(bin_dir / "postgres"),
                "-D",
                str(base / "data"),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"port={port}",
                "-c",
                f"unix_socket_directories={socket_dir}",
            ],
            log_path=self.workdir / "logs" / "postgres.log",
            cwd=base,
            user="postgres",
            stop_signal=signal.SIGINT,  # PostgreSQL's fast shutdown
        )
        return socket_dir

    def _run_as_postgres(self, argv: list[str], cwd: Path) -> None:
        """Run a PostgreSQL tool as the postgres user (initdb refuses root)."""
        assert self.workdir is not None
        log_path = self.workdir / "logs" / "initdb.log"
        with log_path.open("ab") as out:
            try:
                result = subprocess.run(
                    argv,
                    cwd=cwd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=child_setup("postgres"),
                    env={"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"},
                    timeout=self.options.start_timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise Failure(
                    f"initdb did not finish within {self.options.start_timeout:.0f} s"
                ) from None
        if result.returncode != 0:
            print(tail(log_path), file=sys.stderr)
            raise Failure(f"initdb failed with exit code {result.returncode} (log: {log_path})")

    def _postgres_child(self) -> Child:
        """The postgres child."""
        return next(c for c in self.supervisor.children if c.name == "postgres")

    def _psql(
        self,
        socket_dir: Path,
        port: int,
        user: str,
        password: str,
        sql: str,
        database: str = "postgres",
    ) -> subprocess.CompletedProcess[str]:
        """Run one SQL command through psql on the cluster's socket."""
        env = {**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "3"}
        return subprocess.run(
            [
                "psql",
                "-h",
                str(socket_dir),
                "-p",
                str(port),
                "-U",
                user,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-qAtc",
                sql,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )

    def _wait_postgres(self, socket_dir: Path, port: int, user: str, password: str) -> None:
        """Wait until PostgreSQL accepts a login."""
        took = wait_until(
            "PostgreSQL",
            lambda: self._psql(socket_dir, port, user, password, "select 1").returncode == 0,
            timeout=self.options.start_timeout,
            child=self._postgres_child(),
        )
        log(f"PostgreSQL ready on 127.0.0.1:{port} after {took:.1f} s")

    def _create_databases(self, socket_dir: Path, port: int, user: str, password: str) -> None:
        """One database per service, as ESME gives each its own server."""
        for name in ("esme_organizer", "esme_participant"):
            result = self._psql(
                socket_dir, port, user, password, f"create database {name} owner {user}"
            )
            require(
                result.returncode == 0, f"create database {name} failed: {result.stderr.strip()}"
            )

    def _start_rabbitmq(self, ports: dict[str, int], user: str, password: str) -> dict[str, Any]:
        """Start epmd and a RabbitMQ node of our own, listening on 127.0.0.1 only."""
        assert self.workdir is not None
        base = self.workdir / "rabbitmq"
        base.mkdir()
        node = f"esmereal{os.getpid()}@localhost"
        cookie = base / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20))
        cookie.chmod(0o400)
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{ports['amqp']}\n"
            f"default_user = {user}\ndefault_pass = {password}\n"
            "default_permissions.configure = .*\ndefault_permissions.read = .*\n"
            "default_permissions.write = .*\n"
        )
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq-env.conf").write_text("")
        loopback_dist = "-kernel inet_dist_use_interface {127,0,0,1}"
        env = {
            "PATH": os.environ.get("PATH", ""),
            "LANG": "C.UTF-8",
            "HOME": str(base),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(ports["epmd"]),
            "RABBITMQ_NODENAME": node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(ports["amqp"]),
            "RABBITMQ_DIST_PORT": str(ports["erlang_dist"]),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": loopback_dist,
            "RABBITMQ_CTL_ERL_ARGS": loopback_dist,
        }
        # Our own epmd in the foreground, so that it is our child and stops with us (erl would
        # otherwise start a daemon that outlives the node).
        self.supervisor.spawn(
            "epmd",
            ["epmd", "-address", "127.0.0.1", "-port", str(ports["epmd"])],
            log_path=self.workdir / "logs" / "epmd.log",
            env=env,
            stop_timeout=5,
        )
        wait_until(
            "epmd",
            functools.partial(accepts_tcp, ports["epmd"]),
            timeout=self.options.start_timeout,
            child=self.supervisor.children[-1],
        )
        child = self.supervisor.spawn(
            "rabbitmq-server",
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=env,
            cwd=base,
            log_path=self.workdir / "logs" / "rabbitmq.log",
            stop_timeout=30,
        )
        return {"node": node, "env": env, "child": child}

    def _wait_rabbitmq(self, rabbit: dict[str, Any], amqp_url: str) -> None:
        """Wait until the broker lets ESME's queue user log in."""
        took = wait_until(
            "RabbitMQ",
            lambda: amqp_queue_depth(amqp_url, None, timeout=2.0) is None,
            timeout=self.options.start_timeout,
            child=rabbit["child"],
        )
        log(
            f"RabbitMQ ready on {urllib.parse.urlsplit(amqp_url).port} ({rabbit['node']}) "
            f"after {took:.1f} s"
        )

    @staticmethod
    def _rabbitmqctl_command(rabbit: dict[str, Any]) -> list[str]:
        """The rabbitmqctl command line that lists the node's queues with their message counts."""
        env = rabbit["env"]
        keep = (
            "HOME",
            "ERL_EPMD_PORT",
            "ERL_EPMD_ADDRESS",
            "RABBITMQ_CONF_ENV_FILE",
            "RABBITMQ_CTL_ERL_ARGS",
        )
        return [
            "env",
            *(f"{k}={env[k]}" for k in keep),
            str(RABBITMQ_BIN / "rabbitmqctl"),
            "-n",
            rabbit["node"],
            "list_queues",
            "name",
            "messages",
        ]

    def _start_organizer(
        self, netns: str, socket_dir: Path, pg_port: int, org_env: dict[str, str]
    ) -> None:
        """Start `node dist/src/main` (its start:prod) in the organizer namespace; wait for HTTP."""
        assert self.workdir is not None
        # Configuration through the environment only: ConfigModule reads .env.production from the
        # working directory when it exists and lets the process environment win.
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.workdir),
            "NODE_ENV": "production",
            **org_env,
            "DB_HOST": str(socket_dir),
            "DB_PORT": str(pg_port),
            "DB_NAME": "esme_organizer",
        }
        child = self.supervisor.spawn(
            "organizer-api",
            ["nsenter", f"--net={netns}", "node", "dist/src/main"],
            env=env,
            cwd=self.options.organizer_api,
            log_path=self.workdir / "logs" / "organizer-api.log",
        )
        url = f"http://127.0.0.1:{self.ports['organizer']}"
        took = wait_until(
            "organizer API",
            answers_http(url, "/api/events/0"),
            timeout=self.options.start_timeout,
            child=child,
        )
        log(f"organizer API ready on {url} after {took:.1f} s")

    def _start_participant(
        self,
        netns: str,
        socket_dir: Path,
        pg_port: int,
        part_env: dict[str, str],
        org_env: dict[str, str],
        queue_user: str,
        queue_password: str,
    ) -> None:
        """Write participant-api's env file and start it in its namespace; wait for HTTP."""
        assert self.workdir is not None
        env_file = self.workdir / "participant-api.env"
        # ESME's own .env.dev with the addresses of this run: RUN_DB_MIGRATION=true makes the
        # service apply scripts/db.sql itself (from its working directory, which holds a copy of
        # the schema given), as ESME's compose set-up does.
        cwd = self.workdir / "participant-api"
        (cwd / "scripts").mkdir(parents=True)
        shutil.copyfile(self.options.participant_schema, cwd / "scripts" / "db.sql")
        write_env_file(
            env_file,
            {
                **part_env,
                "RUN_DB_MIGRATION": "true",
                "QUEUE_DSN": f"amqp://{urllib.parse.quote(queue_user)}:{urllib.parse.quote(queue_password)}"
                f"@127.0.0.1:{NS_AMQP_PORT}",
                "DATABASE_DSN": f"host={socket_dir} port={pg_port} dbname=esme_participant "
                f"user={org_env['DB_USER']} password={org_env['DB_PASSWORD']}",
                "ORGANIZER_API_URL": f"http://127.0.0.1:{NS_ORGANIZER_PORT}",
                "ORGANIZER_API_KEY": org_env["ORGANIZER_API_KEY"],
            },
        )
        child = self.supervisor.spawn(
            "participant-api",
            ["nsenter", f"--net={netns}", str(self.options.participant_api.resolve()),
             f"-config={env_file}"],
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(self.workdir)},
            cwd=cwd,
            log_path=self.workdir / "logs" / "participant-api.log",
        )
        url = f"http://127.0.0.1:{self.ports['participant']}"
        took = wait_until(
            "participant API",
            answers_http(url, "/profile"),
            timeout=self.options.start_timeout,
            child=child,
        )
        log(f"participant API ready on {url} after {took:.1f} s")


# --------------------------------------------------------------------------------------------------
# Seeding through the organizer API, as ESME's own set-up does it


class Seeder:
    """Registers an agency and its owner, has the super admin approve it, the owner add an event."""

    def __init__(self, url: str, org_env: dict[str, str], email: str, password: str | None) -> None:
        self.url = url
        self.org_env = org_env
        self.email = email
        self.password = password or secrets.token_urlsafe(
            24
        )  # 32 characters; the DTOs ask for 16 to 128

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = None, expect: int = 200
    ) -> Any:
        """One request that must answer `expect`."""
        status, answer = http_request(self.url, method, path, body, token=token, timeout=30.0)
        if status != expect:
            raise Failure(
                f"seeding: {method} {path} answered {status} (expected {expect}): "
                f"{json.dumps(answer)[:300]}"
            )
        return answer

    def sign_in(self, email: str, password: str) -> dict[str, Any]:
        """Sign in with a token that the organizer API accepts; fail unless 200."""
        status, answer = organizer_sign_in(self.url, email, password)
        if status != 200:
            raise Failure(f"seeding: sign-in of {email} answered {status}: {answer}")
        return answer

    def run(self) -> dict[str, Any]:
        """Seed; return the ids and the organizer's credentials."""
        suffix = secrets.token_hex(3)
        agency = self.call(
            "POST",
            "/agency",
            {
                "agency": {
                    "name": f"esmeperf agency {suffix}",
                    "address": "Loopback Street 1, 127-001 Localhost",
                    "website": "https://esmeperf.example.com",
                },
                "owner": {
                    "email": self.email,
                    "password": self.password,
                    "confirmPassword": self.password,
                    "firstName": "Esme",
                    "lastName": "Perf",
                    "phoneNumber": "+48123456789",
                },
            },
            expect=201,
        )
        admin = self.sign_in(
            self.org_env["SUPER_ADMIN_EMAIL"], self.org_env["SUPER_ADMIN_PASSWORD"]
        )
        self.call(
            "PATCH",
            f"/admin/agencies/{agency['id']}/verify",
            {"approved": True},
            token=admin["token"],
        )
        owner = self.sign_in(self.email, self.password)
        now = datetime.now(UTC)
        event = self.call(
            "POST",
            "/agency/events",
            {
                "name": f"esmeperf event {suffix}",
                "description": "Load test against ESME's real services",
                "address": "Loopback Street 1, 127-001 Localhost",
                "lat": 52.2297,
                "lng": 21.0122,
                "timeStart": (now - timedelta(hours=1)).isoformat(),
                "timeEnd": (now + timedelta(days=30)).isoformat(),
            },
            token=owner["token"],
            expect=201,
        )
        # What participant-api will ask for each chat request: prove the key and the approval work.
        seen = self.call(
            "GET", f"/api/events/{event['id']}", token=self.org_env["ORGANIZER_API_KEY"]
        )
        require(
            seen.get("agencyId") == agency["id"],
            f"seeding: GET /api/events/{event['id']} gave {seen}",
        )
        log(
            f"seeded agency {agency['id']} (approved), event {event['id']}, organizer {self.email} "
            f"(role {owner['user']['role']})"
        )
        return {
            "agency_id": agency["id"],
            "event_id": event["id"],
            "organizer_email": self.email,
            "organizer_password": self.password,
            "organizer_role": owner["user"]["role"],
        }


def jwt_issued_at(token: str) -> float:
    """The iat claim of a `prefix:<JWT>` token."""
    payload = token.split(":", 1)[-1].split(".")[1]
    return float(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["iat"])


def organizer_sign_in(url: str, email: str, password: str) -> tuple[int, Any]:
    """POST /auth/sign-in; sign in again once past the user's timeSignOut if the token predates it.

    The organizer API refuses a token whose whole-second iat is before the user's timeSignOut (the
    creation or sign-out time, in milliseconds), so a sign-in in the second of the registration
    gives a dead token.
    """
    body = {"email": email, "password": password}
    status, answer = http_request(url, "POST", "/auth/sign-in", body, timeout=30.0)
    if status != 200:
        return status, answer
    sign_out = datetime.fromisoformat(answer["user"]["timeSignOut"].replace("Z", "+00:00"))
    if jwt_issued_at(answer["token"]) < sign_out.timestamp():
        time.sleep(max(0.0, int(sign_out.timestamp()) + 1 - time.time()) + 0.01)
        status, answer = http_request(url, "POST", "/auth/sign-in", body, timeout=30.0)
    return status, answer


# --------------------------------------------------------------------------------------------------
# Commands


def write_json_atomically(path: Path, document: dict[str, Any]) -> None:
    """Write JSON so that a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    temporary.rename(path)


def print_summary(ready: dict[str, Any], options: Options) -> None:
    """Print the config.json and how to count the chat-request queue."""
    details = ready["esme_real"]
    config = {k: v for k, v in ready.items() if k != "esme_real"}
    print(json.dumps(config, indent=2))
    print(f"# messenger_ws_url is a placeholder: {details['messenger']}")
    print(
        f"# chat-request queue: {details['chat_request_queue']} on {details['amqp_url']} (vhost /)"
    )
    print(f"# count it:  {shlex.join(details['queue_depth_command'])}")
    print(f"#       or:  {shlex.join(details['rabbitmqctl'])}")
    if options.config_out is not None:
        print(f"# config written to {options.config_out}")
    if options.ready_file is not None:
        print(f"# ready file: {options.ready_file}")
    print(f"# logs: {details['logs']}")
    timings = details["timings_s"]
    print(
        f"# up in {timings['total']:.1f} s (start {timings['start']:.1f} s, "
        f"seed {timings['seed']:.1f} s)",
        flush=True,
    )


def queue_count(ready: dict[str, Any]) -> int | None:
    """The chat-request queue's message count (0 before the first request declares it); None
    where the queue is not known (--config without --amqp-url and --queue)."""
    details = ready.get("esme_real") or {}
    if not details.get("amqp_url") or not details.get("chat_request_queue"):
        return None
    return amqp_queue_depth(details["amqp_url"], details["chat_request_queue"]) or 0


def queue_name(ready: dict[str, Any]) -> str:
    """The chat-request queue's name, for messages."""
    return str((ready.get("esme_real") or {}).get("chat_request_queue"))


def self_test(ready: dict[str, Any]) -> None:
    """Sign a participant up, send a chat request, see it in RabbitMQ; check the organizer."""
    status, organizer = organizer_sign_in(
        ready["organizer_api_url"], ready["organizer_email"], ready["organizer_password"]
    )
    require(status == 200, f"self-test: organizer sign-in answered {status}: {organizer}")
    status, profile = http_request(
        ready["organizer_api_url"], "GET", "/profile", token=organizer["token"]
    )
    require(
        status == 200 and profile.get("role") in (2, 3, 4),
        f"self-test: GET /profile gave {status} {profile}",
    )
    email = f"selftest-{secrets.token_hex(4)}@example.com"
    status, signed_up = http_request(
        ready["participant_api_url"],
        "POST",
        "/auth/sign-up",
        {
            "email": email,
            "password": "password123",
            "confirmPassword": "password123",
            "phoneNumber": "+48100200300",
        },
    )
    require(status == 201, f"self-test: participant sign-up answered {status}: {signed_up}")
    before = queue_count(ready)
    status, answer = http_request(
        ready["participant_api_url"],
        "POST",
        "/chat-requests",
        {"eventId": ready["event_id"], "description": "esme-real self-test"},
        token=signed_up["token"],
    )
    require(status == 200, f"self-test: POST /chat-requests answered {status}: {answer}")
    after = queue_count(ready)
    if before is None:
        log("the chat-request queue is not counted: give --amqp-url and --queue")
    else:
        require(
            after == before + 1,
            f"self-test: {queue_name(ready)} holds {after}, expected {before + 1}",
        )
    log(
        f"self-test passed: organizer role {profile['role']}, "
        f"participant {signed_up['user']['id']}"
        + ("" if after is None else f", {queue_name(ready)} holds {after}")
    )


def rest_run(ready: dict[str, Any], config: Path, esmeperf_args: Sequence[str],
             out: Path) -> int:
    """esmeperf --rest-only against the real APIs, then the queue's count against its own:
    every chat request esmeperf counts as filed must be a message in chats_agency_<id>."""
    before = queue_count(ready)
    argv = [sys.executable, "-m", "esmeperf", "--config", str(config), "--rest-only",
            "--out", str(out), *esmeperf_args]
    log("running: " + " ".join(shlex.quote(a) for a in argv))
    # Bounded: esmeperf's own --duration, plus its start and its files; a run without
    # --duration would go on until Ctrl-C, which reaches it too (same process group).
    done = subprocess.run(argv, check=False)
    summaries = sorted(out.glob("*_performance_test_summary.json"))
    require(bool(summaries), f"esmeperf exited {done.returncode} and wrote no summary in {out}")
    summary = json.loads(summaries[-1].read_text())
    filed = summary["created_participants_count"]
    if before is None:
        log(f"chat requests: esmeperf filed {filed}; the queue is not counted: give --amqp-url "
            "and --queue")
        return done.returncode
    # A participant signed up whose chat request was still on its way when the run ended is
    # not counted as filed, though ESME may have queued it: at most that many more.
    signed_up = (summary.get("latency", {}).get("sign_up") or {}).get("count", filed)
    in_flight = max(0, signed_up - filed)
    after = queue_count(ready) or 0
    gained = after - before
    queue = queue_name(ready)
    log(f"chat requests: esmeperf filed {filed}, {queue} gained {gained} ({before} -> {after}); "
        f"{in_flight} more signed up, whose request the end may have cut short")
    require(filed <= gained <= filed + in_flight,
            f"{queue} gained {gained} messages for {filed} chat requests esmeperf counted as "
            f"filed (and {in_flight} that may have been on their way)")
    return done.returncode


def install_signal_handlers() -> None:
    """Turn SIGTERM and SIGHUP into an exception, so that the same cleanup as Ctrl-C runs."""

    def terminated(signum: int, _frame: Any) -> None:
        raise Terminated(signal.Signals(signum).name)

    # A shell starts background jobs with SIGINT ignored, and Python keeps that; SIGINT must still
    # stop us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, terminated)
    signal.signal(signal.SIGHUP, terminated)


def ignore_signals_while_stopping() -> None:
    """Cleanup is bounded; a second Ctrl-C must not leave half the services running."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)


def running_esme(args: argparse.Namespace) -> dict[str, Any]:
    """A running ESME's config.json (or `up`'s ready file) as a ready document; the queue to
    count from --amqp-url and --queue, else from the ready file's own."""
    try:
        ready = json.loads(args.config.read_text())
    except (OSError, ValueError) as error:
        raise Failure(f"cannot read --config {args.config}: {error}") from None
    details = dict(ready.get("esme_real") or {})
    details["amqp_url"] = args.amqp_url or details.get("amqp_url")
    details["chat_request_queue"] = args.queue or details.get("chat_request_queue")
    return {**ready, "esme_real": details}


def cmd_up(args: argparse.Namespace) -> int:
    """`up` (block until Ctrl-C/SIGTERM), `check` (up, self-test, down) and `rest-run` (up,
    esmeperf --rest-only, the queue's count, down); `check` and `rest-run` with --config use a
    running ESME instead and start nothing."""
    stack: Stack | None = None
    config_path: Path | None = None  # rest-run's config.json: --config-out, else a scratch one
    install_signal_handlers()
    failed = True
    try:
        if getattr(args, "config", None) is not None:
            ready = running_esme(args)
        else:
            stack = Stack(Options(
                organizer_api=args.organizer_api,
                organizer_env=args.organizer_env,
                participant_api=args.participant_api,
                participant_env=args.participant_env,
                participant_schema=args.participant_schema,
                workdir=args.workdir,
                keep_workdir=args.keep_workdir,
                config_out=args.config_out,
                ready_file=args.ready_file,
                organizer_port=args.organizer_port,
                participant_port=args.participant_port,
                postgres_port=args.postgres_port,
                amqp_port=args.amqp_port,
                start_timeout=args.start_timeout,
                organizer_email=args.organizer_email,
                organizer_password=args.organizer_password,
            ))
            ready = stack.up()
        config = {k: v for k, v in ready.items() if k != "esme_real"}
        if stack is not None:
            config_path = args.config_out
            if config_path is not None:
                write_json_atomically(config_path, config)
            if args.ready_file is not None:
                write_json_atomically(args.ready_file, ready)
            print_summary(ready, stack.options)
        if args.command == "check":
            self_test(ready)
            failed = False
            return 0
        if args.command == "rest-run":
            out = args.out
            if config_path is None or out is None:
                scratch = Path(tempfile.mkdtemp(prefix="esme-rest-run-"))
                if config_path is None:
                    config_path = scratch / "config.json"
                    write_json_atomically(config_path, config)
                out = out or scratch / "out"
            status = rest_run(ready, config_path, args.esmeperf_args, out)
            log(f"esmeperf's files: {out}")
            failed = False
            return status
        assert stack is not None
        if args.exit_after is not None:
            log(f"ready; stopping after {args.exit_after:g} s (--exit-after)")
            deadline = time.monotonic() + args.exit_after
        else:
            log("ready; Ctrl-C or SIGTERM stops everything")
            deadline = None
        while deadline is None or time.monotonic() < deadline:
            for child in stack.supervisor.children:
                if child.proc.poll() is not None:
                    print(tail(child.log_path), file=sys.stderr)
                    raise Failure(
                        f"{child.name} exited with code {child.proc.returncode} "
                        f"(log: {child.log_path})"
                    )
            time.sleep(0.5)
        failed = False
        return 0
    except KeyboardInterrupt:
        failed = False
        log("interrupted; stopping")
        return 130
    except Terminated as signal_name:
        failed = False
        log(f"{signal_name}; stopping")
        return 143
    finally:
        ignore_signals_while_stopping()
        if stack is not None:
            stack.down(failed)


def cmd_queue_depth(args: argparse.Namespace) -> int:
    """Print the number of messages in the chat-request queue."""
    url, queue = args.amqp_url, args.queue
    if args.ready_file is not None:
        details = json.loads(args.ready_file.read_text())["esme_real"]
        url = url or details["amqp_url"]
        queue = queue or details["chat_request_queue"]
    require(url is not None and queue is not None, "give --ready-file, or --amqp-url and --queue")
    try:
        count = amqp_queue_depth(url, queue, timeout=args.timeout)
    except (OSError, AmqpError) as error:
        raise Failure(f"cannot read {queue} at {url}: {error}") from None
    print(0 if count is None else count)
    return 0


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="esme_real.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("up", "start and seed; block until Ctrl-C or SIGTERM"),
        ("check", "up, then a sign-up, a chat request and a queue count, then down"),
        ("rest-run", "up, then esmeperf --rest-only with the arguments after --, then "
         "check that the queue holds every chat request esmeperf filed, then down"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        built = p.add_argument_group(
            "ESME, built outside this repository (ESME's public repository's README says how)")
        built.add_argument("--organizer-api", type=Path, metavar="DIR",
                           help="the organizer API's built directory (dist/src/main.js, "
                           "node_modules/, .env.dev)")
        built.add_argument("--organizer-env", type=Path, metavar="PATH",
                           help="its environment (default: .env.dev in DIR)")
        built.add_argument("--participant-api", type=Path, metavar="PATH",
                           help="the participant API's binary")
        built.add_argument("--participant-env", type=Path, metavar="PATH",
                           help="its environment (default: .env.dev beside the binary)")
        built.add_argument("--participant-schema", type=Path, metavar="PATH",
                           help="its SQL schema (scripts/db.sql in your checkout)")
        if name != "up":
            running = p.add_argument_group("or a running ESME (nothing is started)")
            running.add_argument("--config", type=Path, metavar="PATH",
                                 help="its config.json (or up's --ready-file)")
            running.add_argument("--amqp-url", help="its RabbitMQ, to count the chat-request "
                                 "queue (amqp://user:password@host:port/)")
            running.add_argument("--queue", help="the chat-request queue, chats_agency_<id>")
        p.add_argument(
            "--workdir",
            type=Path,
            help="an empty or new directory for the run (default: a temporary "
            "one); removed on exit unless --keep-workdir",
        )
        p.add_argument(
            "--keep-workdir", action="store_true", help="keep the workdir (logs, data) on exit"
        )
        p.add_argument("--config-out", type=Path, metavar="PATH", help="write the config.json here")
        p.add_argument(
            "--ready-file",
            type=Path,
            metavar="PATH",
            help="write a JSON document here once everything is up "
            "(config.json keys + 'esme_real'); "
            "removed on exit",
        )
        p.add_argument(
            "--organizer-port", type=int, default=0, metavar="PORT", help="0: any free port"
        )
        p.add_argument(
            "--participant-port", type=int, default=0, metavar="PORT", help="0: any free port"
        )
        p.add_argument(
            "--postgres-port", type=int, default=0, metavar="PORT", help="0: any free port"
        )
        p.add_argument("--amqp-port", type=int, default=0, metavar="PORT", help="0: any free port")
        p.add_argument(
            "--start-timeout",
            type=float,
            default=180.0,
            metavar="S",
            help="bound on each service's start (default %(default)s)",
        )
        p.add_argument("--organizer-email", default="organizer@esmeperf.example.com")
        p.add_argument(
            "--organizer-password", help="at least 16 characters (default: a random one)"
        )
        if name == "rest-run":
            p.add_argument("--out", type=Path, metavar="DIR",
                           help="esmeperf's --out (default: a temporary directory, kept)")
            p.add_argument("esmeperf_args", nargs=argparse.REMAINDER, metavar="-- ARGS",
                           help="esmeperf's arguments, e.g. -- -cpi 100 --duration 30s")
        if name == "up":
            p.add_argument(
                "--exit-after",
                type=float,
                metavar="S",
                help="stop after S seconds instead of waiting for a signal",
            )
    p = sub.add_parser("queue-depth", help="print the message count of the chat-request queue")
    p.add_argument("--ready-file", type=Path)
    p.add_argument("--amqp-url")
    p.add_argument("--queue")
    p.add_argument("--timeout", type=float, default=5.0)
    sub.add_parser("_relay", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command in ("up", "check", "rest-run"):
        check_esme(parser, args)
    password = getattr(args, "organizer_password", None)
    if password is not None and not 16 <= len(password) <= 128:
        parser.error("--organizer-password must have 16 to 128 characters")
    return args


def check_esme(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Either the three built artefacts or a running ESME's --config; the env files' defaults."""
    built = ("organizer_api", "participant_api", "participant_schema")
    given = [name for name in built if getattr(args, name) is not None]
    if getattr(args, "config", None) is not None:
        if given:
            parser.error("give ESME's built artefacts or --config, not both")
        return
    if len(given) < len(built):
        parser.error("needs ESME, built outside this repository: --organizer-api DIR "
                     "--participant-api PATH --participant-schema PATH"
                     + ("" if args.command == "up" else ", or a running ESME's --config PATH"))
    if args.organizer_env is None:
        args.organizer_env = args.organizer_api / ".env.dev"
    if args.participant_env is None:
        args.participant_env = args.participant_api.parent / ".env.dev"


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch a subcommand; one-line errors, exit code 1."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "_relay":
            return relay_command()
        if getattr(args, "esmeperf_args", None) and args.esmeperf_args[0] == "--":
            args.esmeperf_args = args.esmeperf_args[1:]
        if args.command == "queue-depth":
            return cmd_queue_depth(args)
        return cmd_up(args)
    except Failure as failure:
        print(f"{PROG}: error: {failure}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
