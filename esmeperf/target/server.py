"""Build the three apps, bind them, announce readiness, and shut down on signal or watch-fd EOF."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .auth import hash_password
from .hub import Hub
from .messenger import Messenger
from .models import Faults
from .organizer_api import OrganizerApi
from .participant_api import ParticipantApi
from .store import Store
from .wire import now_ms

log = logging.getLogger("esmeperf.target")


class BindError(Exception):
    """A listener could not bind; the message names the address and port."""


class ReadyFileError(Exception):
    """--ready-file could not be written after all (checked at start, lost since): exit 2."""


@dataclass(frozen=True)
class Options:
    """Everything the server needs, already validated by the CLI."""

    host: str
    organizer_port: int
    participant_port: int
    messenger_port: int
    db: str | None
    organizers: list[tuple[str, str]]  # (email, password)
    ready_file: str | None
    ready_fd: int | None
    watch_fd: int | None
    pbkdf2_iterations: int
    send_buffer: int
    max_frame: int
    auth_timeout: float
    faults: Faults


def host_port(host: str, port: int) -> str:
    """'host:port' with IPv6 literals bracketed."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def url(scheme: str, host: str, port: int) -> str:
    """A URL with no trailing slash."""
    return f"{scheme}://{host_port(host, port)}"


def ready_document(opts: Options, ports: dict[str, int]) -> dict[str, Any]:
    """ESME's config.json keys, then our extras: `organizers`, the accounts after the first
    (which organizer_email and organizer_password name, once: a file edited to another
    password there must not disagree with itself), and our pid."""
    (email, password), *more = opts.organizers
    return {
        "event_id": 1,
        "messenger_ws_url": url("ws", opts.host, ports["messenger"]),
        "organizer_api_url": url("http", opts.host, ports["organizer"]),
        "organizer_email": email,
        "organizer_password": password,
        "participant_api_url": url("http", opts.host, ports["participant"]),
        "organizers": [{"email": e, "password": p} for e, p in more],
        "pid": os.getpid(),
    }


def announce(opts: Options, document: dict[str, Any]) -> None:
    """Write the ready JSON to --ready-file (atomically) and/or --ready-fd (then close it),
    then the one ready line on stderr."""
    line = json.dumps(document) + "\n"
    if opts.ready_file:
        directory = os.path.dirname(os.path.abspath(opts.ready_file))
        try:
            fd, tmp = tempfile.mkstemp(prefix=".ready-", dir=directory)
            with os.fdopen(fd, "w") as handle:
                handle.write(line)
            os.replace(tmp, opts.ready_file)
        except OSError as exc:
            raise ReadyFileError(f"--ready-file {opts.ready_file}: "
                                 f"{exc.strerror or exc}") from None
    if opts.ready_fd is not None:
        data = line.encode()
        while data:
            data = data[os.write(opts.ready_fd, data):]
        os.close(opts.ready_fd)
    print(ready_line(document), file=sys.stderr, flush=True)


def ready_line(document: dict[str, Any]) -> str:
    """The line a person starting the target reads: where its three APIs listen."""
    return (f"esmeperf-target: ready: organizer API {document['organizer_api_url']}, "
            f"participant API {document['participant_api_url']}, "
            f"Messenger API {document['messenger_ws_url']}")


def withdraw(path: str) -> None:
    """Remove our ready file at exit: a stale one would send a client to closed ports.
    Left alone if another process has replaced it since."""
    try:
        with open(path, encoding="utf-8") as handle:
            owner = json.loads(handle.read()).get("pid")
    except (OSError, ValueError, AttributeError):
        return
    if owner == os.getpid():
        try:
            os.unlink(path)
        except OSError as exc:
            log.warning("could not remove the ready file %s: %s", path, exc.strerror)


async def serve(opts: Options) -> int:
    """Run until SIGTERM/SIGINT or EOF on --watch-fd; return the exit status."""
    loop = asyncio.get_running_loop()
    tmpdir = None
    db_path = opts.db
    if db_path is None:
        tmpdir = tempfile.mkdtemp(prefix="esmeperf-target-")
        db_path = os.path.join(tmpdir, "target.sqlite3")
    store = Store(db_path)
    runners: list[web.AppRunner] = []
    messenger: Messenger | None = None
    announced = False
    try:
        hashes = await asyncio.gather(*(
            loop.run_in_executor(None, hash_password, pw, opts.pbkdf2_iterations)
            for _, pw in opts.organizers))
        store.seed([(email, h) for (email, _), h in zip(opts.organizers, hashes, strict=True)],
                   now_ms())
        hub = Hub(store, opts.faults, opts.send_buffer, opts.pbkdf2_iterations)
        hub.load()
        messenger = Messenger(hub, opts.max_frame, opts.auth_timeout)
        ports: dict[str, int] = {}
        for name, app, port in (("organizer", OrganizerApi(hub).app(), opts.organizer_port),
                                ("participant", ParticipantApi(hub).app(), opts.participant_port),
                                ("messenger", messenger.app(), opts.messenger_port)):
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            runners.append(runner)
            try:
                await web.TCPSite(runner, opts.host, port, backlog=2048).start()
            except OSError as exc:
                raise BindError(f"cannot listen on {host_port(opts.host, port)} "
                                f"({name} API): {exc.strerror or exc}") from exc
            ports[name] = runner.addresses[0][1]
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if opts.watch_fd is not None:
            watch_parent(loop, opts.watch_fd, stop)
        announced = True  # from here on, a ready file of ours may exist
        announce(opts, ready_document(opts, ports))
        await stop.wait()
        log.info("shutting down")
        return 0
    finally:
        if announced and opts.ready_file:
            withdraw(opts.ready_file)
        if messenger is not None:
            for transport in list(messenger.sockets):
                transport.abort()
        for runner in reversed(runners):
            await runner.cleanup()
        store.close()
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)


def watch_parent(loop: asyncio.AbstractEventLoop, fd: int, stop: asyncio.Event) -> None:
    """Set `stop` when the parent's end of the pipe closes (EOF) or fails."""
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, readable)


def run(opts: Options) -> int:
    """Run the server; a bind failure is exit 1, a ready file lost since the start exit 2, each
    one line on stderr."""
    try:
        return asyncio.run(serve(opts))
    except BindError as exc:
        print(f"esmeperf-target: error: {exc}", file=sys.stderr)
        return 1
    except ReadyFileError as exc:
        print(f"esmeperf-target: error: {exc}", file=sys.stderr)
        return 2
