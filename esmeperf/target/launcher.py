"""Run the target as a child process and wait for its ready JSON (generator and tests use it)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from types import TracebackType
from typing import IO, Any

# The repository root, so `python -m esmeperf.target` works from an uninstalled checkout.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class TargetError(Exception):
    """The target could not be started or queried; the message is one line."""


def _new_group() -> dict[str, Any]:
    """Popen arguments for a new session or process group, as platform_support chose.

    Imported here, not at the top: the target's own package imports nothing from the
    generator, and the generator's launcher is the one place that needs to know.
    """
    from ..system.platform_support import active

    return active().popen_session()


class TargetProcess:
    """Run `python -m esmeperf.target` as a child on loopback, ephemeral ports by default."""

    def __init__(self, *extra_args: str, host: str = "127.0.0.1", ready_timeout: float = 20.0,
                 log_path: str | None = None) -> None:
        self.extra_args = tuple(extra_args)
        self.host = host
        self.ready_timeout = ready_timeout
        self.log_path = log_path
        self._temp_log = log_path is None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._watch_w: int | None = None
        self._killed = False  # a deliberate SIGKILL is not a crash worth keeping a log for
        self.config: dict[str, Any] = {}

    # -- properties --------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        """Spawn the child, wait for its ready JSON, and return it (also kept as .config)."""
        if self._proc is not None:
            raise TargetError("target already started")
        if self.log_path is None:
            fd, self.log_path = tempfile.mkstemp(prefix="esmeperf-target-", suffix=".log")
            os.close(fd)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        ready_r, ready_w = os.pipe()
        watch_r, self._watch_w = os.pipe()  # we hold the write end; its EOF stops the child
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH")) if p)
        cmd = [sys.executable, "-m", "esmeperf.target", "--host", self.host,
               "--organizer-port", "0", "--participant-port", "0", "--messenger-port", "0",
               "--ready-fd", str(ready_w), "--watch-fd", str(watch_r), *self.extra_args]
        try:
            # Its own session (or process group): a terminal's Ctrl-C (sent to the whole
            # foreground group) must reach only the generator, which then stops gracefully
            # and stops the target last.
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                          stderr=subprocess.STDOUT, env=env,
                                          pass_fds=(ready_w, watch_r), **_new_group())
        finally:
            os.close(ready_w)
            os.close(watch_r)
        try:
            line = self._read_ready(ready_r)
        finally:
            os.close(ready_r)
        try:
            self.config = json.loads(line)
        except ValueError:
            self.stop()
            raise TargetError(f"target wrote invalid ready JSON: {line[:200]!r}") from None
        return self.config

    def _read_ready(self, fd: int) -> str:
        deadline = time.monotonic() + self.ready_timeout
        data = b""
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise TargetError(f"target not ready after {self.ready_timeout:g} s"
                                  f"{self._tail()}")
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:  # the child closed the pipe without announcing: it exited
                code = self._wait(5.0)
                self.stop()
                raise TargetError(f"target exited with status {code} before it was ready"
                                  f"{self._tail()}")
            data += chunk
        return data.decode()

    def _wait(self, timeout: float) -> int | None:
        assert self._proc is not None
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def _tail(self, lines: int = 5) -> str:
        """The child's last log lines joined into one line, prefixed ': '."""
        if self.log_path is None:
            return ""
        try:
            with open(self.log_path, "rb") as handle:
                text = handle.read()[-4000:].decode(errors="replace")
        except OSError:
            return ""
        tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return (": " + " | ".join(tail) if tail else "") + f" (log: {self.log_path})"

    def ran_out_of_files(self) -> bool:
        """Whether the target logged running out of descriptors (asyncio logs the refused
        accept(), aiohttp the failed request)."""
        if self.log_path is None:
            return False
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(max(0, os.path.getsize(self.log_path) - 65536))
                text = handle.read()
        except OSError:
            return False
        return b"[Errno 24]" in text or b"[Errno 23]" in text

    def stats(self, timeout: float = 5.0, send_interval_ms: float | None = None
              ) -> dict[str, Any]:
        """GET /stats from the messenger port; with `send_interval_ms` (the client's -smi),
        the send-interval error as the target saw it too."""
        if not self.config:
            raise TargetError("target not started")
        base = "http" + self.config["messenger_ws_url"][2:]
        query = f"?send_interval_ms={send_interval_ms:g}" if send_interval_ms else ""
        try:
            with urllib.request.urlopen(base + "/stats" + query, timeout=timeout) as response:
                result: dict[str, Any] = json.load(response)
                return result
        except OSError as exc:
            raise TargetError(f"GET {base}/stats failed: {exc}") from exc

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to `timeout`, then SIGKILL; idempotent; returns the exit status."""
        proc = self._proc
        if proc is None:
            return 0
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self._wait(timeout) is None:
                proc.kill()
                proc.wait()
        self._release()
        assert proc.returncode is not None
        return proc.returncode

    @property
    def killed(self) -> bool:
        """Whether kill() ended the child (a deliberate SIGKILL, not a crash)."""
        return self._killed

    def kill(self) -> None:
        """SIGKILL the child at once (for fault tests)."""
        if self._proc is not None and self._proc.poll() is None:
            self._killed = True
            self._proc.kill()
            self._proc.wait()
        self._release()

    def _release(self) -> None:
        if self._watch_w is not None:
            os.close(self._watch_w)
            self._watch_w = None
        if self._log is not None:
            self._log.close()
            self._log = None
            if self._temp_log and (self.returncode == 0 or self._killed) and self.log_path:
                os.unlink(self.log_path)

    def close_watch_pipe(self) -> None:
        """Close our end of the watch pipe, as a dying parent would (for tests)."""
        if self._watch_w is not None:
            os.close(self._watch_w)
            self._watch_w = None

    def __enter__(self) -> TargetProcess:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
