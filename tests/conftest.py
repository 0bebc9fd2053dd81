"""Shared fixtures: a real target child process on ephemeral loopback ports, and small clients."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest
import requests
import websocket

from esmeperf.system import platform_support
from esmeperf.target.launcher import TargetProcess

# -- tests side by side, and the ones that need the machine alone ---------------------------
# The suite runs on pytest-xdist's workers (setup.cfg: -n auto, capped below; an idle worker
# steals tests). Most tests wait on the wall clock (a run of a few seconds at a light load)
# and share two cores well. A test marked `exclusive` measures the machine itself (the
# generator's health and lag, the noise between two runs, how fast a loss ends a run) and
# runs with no other test beside it: it holds cpu.lock exclusively, every other test holds it
# shared. An exclusive test that waits goes first (cpu-gate.lock), so it is not starved.
# Without xdist (-p no:xdist, or -n 0) tests run one at a time and nothing is locked.
MAX_WORKERS = 4


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """-n auto: a worker more than the cores, at most MAX_WORKERS. The tests that share wait
    on the clock more than they compute (the whole suite keeps two cores 40% busy)."""
    return max(2, min(MAX_WORKERS, len(os.sched_getaffinity(0)) + 1))


@contextmanager
def _machine_share(folder: Path, exclusive: bool) -> Iterator[None]:
    """A readers-writer lock between xdist's workers, over two flock(2)ed files in `folder`
    (released by the kernel if a worker dies)."""
    with open(folder / "cpu-gate.lock", "a") as gate, open(folder / "cpu.lock", "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)  # the gate: no new sharer while an exclusive waits
        try:
            if exclusive:
                fcntl.flock(lock, fcntl.LOCK_EX)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        if not exclusive:
            fcntl.flock(lock, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None
                            ) -> Generator[None, None, None]:
    """Each test's setup, call and teardown (its module's fixtures included) inside its share
    of the machine; without xdist, as before."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    folder = Path(tempfile.gettempdir()) / f"esmeperf-tests-{os.environ['PYTEST_XDIST_TESTRUNUID']}"
    folder.mkdir(exist_ok=True)
    with _machine_share(folder, item.get_closest_marker("exclusive") is not None):
        yield


# -- tools a test needs from the machine --------------------------------------------------
# .ci/run installs Debian's chromium and prometheus where apt-get works and names what it has in
# ESMEPERF_REQUIRE: there, a test that would skip for want of one fails instead.
REQUIRE_ENV = "ESMEPERF_REQUIRE"


def skip_unless_required(tool: str, reason: str) -> NoReturn:
    """Skip for want of `tool`, saying why; fail where ESMEPERF_REQUIRE names it."""
    if tool in os.environ.get(REQUIRE_ENV, "").split():
        pytest.fail(f"{reason}; {REQUIRE_ENV} requires {tool}", pytrace=False)
    pytest.skip(reason)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked `portable_twin` runs twice, on the native mechanisms and on --portable's
    fallbacks (what macOS and Windows use: esmeperf/system/platform_support.py). A
    representative few are, not all: the suite must stay within minutes on two cores. Each
    twin's summaries must say which they used (checked after the test by `platform_path`); the
    shards' inheritance of the choice is tests/system/test_portable.py's."""
    if metafunc.definition.get_closest_marker("portable_twin") is not None:
        metafunc.parametrize("platform_path", ["native", "portable"], indirect=True)


@pytest.fixture(autouse=True)
def platform_path(request: pytest.FixtureRequest,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[str | None]:
    """For a portable twin: ESMEPERF_PORTABLE set (the --processes shards and esmeperf
    subprocesses inherit it) or unset; other tests run as the environment says."""
    path = getattr(request, "param", None)
    if path is None:
        yield None
        return
    if path == "portable":
        monkeypatch.setenv(platform_support.ENV, "1")
    else:
        monkeypatch.delenv(platform_support.ENV, raising=False)
    yield path
    tmp_path = request.node.funcargs.get("tmp_path")
    summaries = list(tmp_path.rglob("*_performance_test_summary.json")) if tmp_path else []
    assert summaries, "a portable twin wrote no summary to check its platform key in"
    for summary in summaries:
        used = json.loads(summary.read_text())["platform"]
        assert used["portable"] is (path == "portable"), (summary, used)
        expected = platform_support.fallbacks() if path == "portable" else \
            platform_support.detected()
        assert used["batched_reads"] is expected.batched_reads, (summary, used)


@pytest.fixture
def target() -> Iterator[TargetProcess]:
    """A fresh target with default options; stopped (and its exit status checked) afterwards."""
    proc = TargetProcess()
    proc.start()
    try:
        yield proc
    finally:
        assert_stopped_cleanly(proc)


def assert_stopped_cleanly(proc: TargetProcess) -> None:
    """Stop a target; unless a test killed it on purpose, it must exit 0 on SIGTERM."""
    code = proc.stop()
    assert code == 0 or proc.killed, f"the target exited with status {code}"


@pytest.fixture
def target_factory() -> Iterator[Callable[..., TargetProcess]]:
    """Start targets with extra CLI arguments, e.g. target_factory("--fail-signup-after", "3")."""
    started: list[TargetProcess] = []

    def factory(*extra_args: str, **kwargs: Any) -> TargetProcess:
        proc = TargetProcess(*extra_args, **kwargs)
        started.append(proc)
        proc.start()
        return proc

    yield factory
    for proc in started:
        assert_stopped_cleanly(proc)


class EsmeClient:
    """Blocking REST and WebSocket helpers against one target's ready config (timeouts always)."""

    timeout = 5.0

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.http = requests.Session()
        self.sockets: list[websocket.WebSocket] = []

    def close(self) -> None:
        for ws in self.sockets:
            try:
                ws.close(timeout=1)
            except (websocket.WebSocketException, OSError):
                pass  # already dropped by the server: only the socket needs releasing
            ws.shutdown()
        self.http.close()

    # REST -----------------------------------------------------------------------------------
    def post(self, api: str, path: str, body: Any = None, token: str | None = None,
             data: str | bytes | None = None) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        payload = data if data is not None else json.dumps(body)
        return self.http.post(self.config[api] + path, data=payload, headers=headers,
                              timeout=self.timeout)

    def get(self, api: str, path: str, token: str | None = None) -> requests.Response:
        headers = {} if token is None else {"Authorization": "Bearer " + token}
        base = self.config[api]
        if base.startswith("ws"):
            base = "http" + base[2:]
        return self.http.get(base + path, headers=headers, timeout=self.timeout)

    def organizer_token(self, email: str | None = None) -> str:
        r = self.post("organizer_api_url", "/auth/sign-in",
                      {"email": email or self.config["organizer_email"],
                       "password": self.config["organizer_password"]})
        assert r.status_code == 200, r.text
        token: str = r.json()["token"]
        return token

    def sign_up(self, email: str | None = None) -> tuple[dict[str, Any], str]:
        email = email or f"p-{uuid.uuid4().hex[:12]}@example.com"
        r = self.post("participant_api_url", "/auth/sign-up",
                      {"email": email, "password": "performance",
                       "confirmPassword": "performance", "phoneNumber": "+48100200300"})
        assert r.status_code == 201, r.text
        body = r.json()
        return body["user"], body["token"]

    def request_chat(self, token: str, description: str = "Performance test chat request",
                     event_id: int = 1) -> None:
        r = self.post("participant_api_url", "/chat-requests",
                      {"eventId": event_id, "description": description}, token=token)
        assert r.status_code == 200, r.text

    # WebSocket ------------------------------------------------------------------------------
    def raw_ws(self) -> websocket.WebSocket:
        ws = websocket.create_connection(self.config["messenger_ws_url"] + "/connect",
                                         timeout=self.timeout)
        self.sockets.append(ws)
        return ws

    def ws(self, token: str) -> websocket.WebSocket:
        ws = self.raw_ws()
        ws.send(json.dumps({"Authorization": "Bearer " + token}))
        return ws

    @staticmethod
    def send(ws: websocket.WebSocket, kind: str, payload: Any = "") -> None:
        ws.send(json.dumps({"type": kind, "payload": payload}) + "\n")

    @staticmethod
    def recv(ws: websocket.WebSocket) -> dict[str, Any]:
        text = ws.recv()
        assert isinstance(text, str) and text.endswith("\n"), text
        frame: dict[str, Any] = json.loads(text)
        return frame

    def request(self, ws: websocket.WebSocket, kind: str, payload: Any = "") -> dict[str, Any]:
        self.send(ws, kind, payload)
        return self.recv(ws)

    def chat(self, description: str = "Performance test chat request") -> dict[str, Any]:
        """Set up one live chat; returns the sockets, tokens, ids and the new_chat payload."""
        user, p_token = self.sign_up()
        self.request_chat(p_token, description)
        o_token = self.organizer_token()
        org = self.ws(o_token)
        part = self.ws(p_token)
        self.send(part, "get_chats")  # proves the participant is attached before start_chat
        assert self.recv(part) == {"type": "chats", "payload": {"chats": []}}
        new_chat = self.request(org, "start_chat")
        assert new_chat["type"] == "new_chat", new_chat
        assert self.recv(part)["type"] == "new_chat"
        if description:
            for ws in (org, part):
                assert self.recv(ws)["type"] == "user_message"
        return {"org": org, "part": part, "o_token": o_token, "p_token": p_token,
                "user": user, "chat": new_chat["payload"], "chat_id": new_chat["payload"]["id"]}


@pytest.fixture
def esme(target: TargetProcess) -> Iterator[EsmeClient]:
    """An EsmeClient bound to the `target` fixture."""
    client = EsmeClient(target.config)
    yield client
    client.close()


@pytest.fixture
def client_factory() -> Iterator[Callable[[TargetProcess], EsmeClient]]:
    """Make EsmeClients for targets from target_factory; all are closed at teardown."""
    clients: list[EsmeClient] = []

    def factory(proc: TargetProcess) -> EsmeClient:
        client = EsmeClient(proc.config)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()
