"""The multi-machine recipe of docs/scaling-out.md run as written, each command its own
process: a Dask scheduler on 127.0.0.1, two workers on 127.0.0.2 and 127.0.0.3 standing in for
two load hosts, a standalone target, and `esmeperf --scheduler`. Then the ways such a run
breaks: a worker lost, the scheduler lost, the client lost (the shards' lease), a worker's clock
off.

Readiness is read, never slept on: the scheduler's address from its scheduler file, the workers
from the scheduler's own list of them, the run's progress from esmeperf's progress lines. Every
process started here is killed with its whole process group at the end, pass or fail, and the
`hosts` fixture checks that none is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from helpers import command, load_results, scripts_env, shorten

from esmeperf.engine.dask import LEASE_ENV
from esmeperf.target.launcher import TargetProcess


def _bindable(host: str) -> bool:
    try:
        with socket.socket() as sock:
            sock.bind((host, 0))
    except OSError:
        return False
    return True


LOAD_HOSTS = ("127.0.0.2", "127.0.0.3")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not all(_bindable(h) for h in LOAD_HOSTS),
                       reason="127.0.0.2 and 127.0.0.3 are not bindable here (not Linux?)"),
    pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                       reason="esmeperf[distributed] not installed"),
]

READY_TIMEOUT = 60.0  # seconds for a Dask process to come up on a busy machine
# bench/scale_out.py runs these tests again and again: each appends what it measured (its end
# after the loss, its shards' timelines) as a JSON line to this file, when it is set.
RECORD_ENV = "ESMEPERF_SCALE_OUT_RECORD"
LEASE_S = 3  # the lease the tests that lose the client or the scheduler give the shards
LOSS_BOUND_S = 10.0  # a lost worker or scheduler stops the load within this (docs/scaling-out.md)
# ... and the client exits within this, its files written (the PNG and the HTML report render
# on a machine two workers, a scheduler and the target share)
EXIT_BOUND_S = 30.0
T = TypeVar("T")


def _die_with_the_test() -> None:
    """In each child before it runs: killed if the test process dies, even by SIGKILL (a
    bench's timeout, a CI job cancelled), when the fixture's cleanup cannot run. Linux's
    PR_SET_PDEATHSIG; elsewhere the fixture's cleanup is all there is."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


PR_SET_PDEATHSIG = 1


def pause(seconds: float) -> None:
    """A short pause between checks of a condition only another process can change."""
    select.select([], [], [], seconds)


class Hosts:
    """docs/scaling-out.md's multi-machine commands on loopback, each in its own process
    group."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[subprocess.Popen[bytes]] = []
        self.scheduler = ""  # tcp://127.0.0.1:PORT, from the scheduler file
        self.scheduler_proc: subprocess.Popen[bytes] | None = None
        self._http = ""  # the scheduler's HTTP server: its identity lists the workers
        self.workers: dict[str, subprocess.Popen[bytes]] = {}  # load host -> its dask worker
        self.stderr = b""  # what the client wrote on stderr until a wait_for_progress

    def start(self, cmd: str, name: str, env: dict[str, str] | None = None,
              stderr: int = subprocess.STDOUT) -> subprocess.Popen[bytes]:
        # TMPDIR: the workers' scratch space stays in the test's folder.
        with (self.folder / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(shlex.split(cmd), cwd=self.folder, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=stderr, start_new_session=True,
                                    preexec_fn=_die_with_the_test,
                                    env=scripts_env({"TMPDIR": str(self.folder), **(env or {})}))
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def wait(self, what: str, condition: Callable[[], T | None]) -> T:
        """condition()'s first true value; fails at once if a process started here died."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            value = condition()
            if value:
                return value
            for name, proc in [("scheduler", self.scheduler_proc),
                               *((f"worker-{h}", p) for h, p in self.workers.items())]:
                assert proc is None or proc.poll() is None, f"{name} exited:\n{self.log(name)}"
            assert time.monotonic() < deadline, f"no {what} within {READY_TIMEOUT:g} s"
            pause(0.05)

    def start_scheduler(self) -> None:
        cmd = _replace(command("dask scheduler"), ("SCHEDULER", "127.0.0.1"),
                       ("--port 8786", "--port 0"), (":8787", ":0"))  # ephemeral ports
        self.scheduler_proc = self.start(cmd, "scheduler")
        info = self.wait("scheduler.json", lambda: _read_json(self.folder / "scheduler.json"))
        self.scheduler = info["address"]
        self._http = f"http://127.0.0.1:{info['services']['dashboard']}"

    def start_workers(self, hosts: tuple[str, ...] = LOAD_HOSTS,
                      env: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
        """A `dask worker` on each load host; returns host -> worker address once all joined."""
        for host in hosts:
            cmd = _replace(command("dask worker"), ("tcp://SCHEDULER:8786", self.scheduler),
                           ("LOADHOST", host))
            self.workers[host] = self.start(cmd, f"worker-{host}", (env or {}).get(host))

        def joined() -> dict[str, str] | None:
            with urllib.request.urlopen(self._http + "/json/identity.json", timeout=5) as reply:
                listed = json.load(reply)["workers"]
            found = {w["host"]: address for address, w in listed.items()}
            return found if set(hosts) <= set(found) else None

        return self.wait("workers on " + ", ".join(hosts), joined)

    def start_client(self, duration: str, env: dict[str, str] | None = None,
                     cpi: str = "5") -> subprocess.Popen[bytes]:
        """The page's client command for `duration`; a longer -cpi for a lighter load."""
        cmd = _replace(shorten(command("python3 -m esmeperf -sci 10 -cpi 5"), duration),
                       ("tcp://SCHEDULER:8786", self.scheduler), ("-cpi 5 ", f"-cpi {cpi} "))
        return self.start(cmd, "esmeperf", env, stderr=subprocess.PIPE)

    def wait_for_progress(self, client: subprocess.Popen[bytes], seconds: int) -> None:
        """Read the client's stderr up to a progress line `N s/...` with N >= seconds and
        messages being sent."""
        deadline = time.monotonic() + READY_TIMEOUT
        pattern = re.compile(rb"^\s*(\d+)s/\d+s participants .* sent/s\s+(\d+) ", re.M)
        while not any(int(m[1]) >= seconds and int(m[2]) > 0
                      for m in pattern.finditer(self.stderr)):
            assert client.poll() is None, self.stderr.decode(errors="replace")
            assert time.monotonic() < deadline, self.stderr.decode(errors="replace")
            self.read_stderr(client, 1.0)

    def read_stderr(self, client: subprocess.Popen[bytes], wait: float) -> None:
        """Keep what the client wrote on stderr, waiting for it up to `wait` seconds."""
        assert client.stderr is not None
        fd = client.stderr.fileno()
        if select.select([fd], [], [], wait)[0]:
            self.stderr += os.read(fd, 65536)

    def finish(self, client: subprocess.Popen[bytes], timeout: float = 120) -> tuple[int, str]:
        """The client's exit status and its whole stderr."""
        _, rest = client.communicate(timeout=timeout)
        (self.folder / "esmeperf.err").write_bytes(self.stderr + rest)  # kept for a failure
        return client.returncode, (self.stderr + rest).decode(errors="replace")

    def dump_workers(self) -> None:
        """Every thread's stack of each worker's processes, with py-spy where it is installed
        (a developer's tool: CI has none), into worker-HOST.stacks: where a stuck shard is."""
        spy = shutil.which("py-spy")
        if spy is None:
            return
        for host, proc in self.workers.items():
            with (self.folder / f"worker-{host}.stacks").open("w") as out:
                for pid in _members({proc.pid}):
                    out.write(f"== pid {pid}: each thread's state and kernel wait channel\n")
                    for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
                        with contextlib.suppress(OSError):
                            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                            out.write(f"{task.name} {fields[0]} "
                                      f"{(task / 'wchan').read_text()}\n")
                    out.write(f"== pid {pid}: py-spy\n")
                    out.flush()
                    subprocess.run([spy, "dump", "--native", "--pid", str(pid)], stdout=out,
                                   stderr=subprocess.STDOUT, timeout=120, check=False)

    def close(self) -> None:
        """SIGKILL every process group started here; then none of their processes may live."""
        groups = {proc.pid for proc in self.procs}
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.procs:
            proc.wait(timeout=30)
            if proc.stderr is not None:
                proc.stderr.close()
        deadline = time.monotonic() + 10
        while left := _members(groups):
            assert time.monotonic() < deadline, f"processes left behind: {left}"
            pause(0.05)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    recipe = Hosts(tmp_path)
    try:
        yield recipe
    finally:
        recipe.close()


def _replace(cmd: str, *changes: tuple[str, str]) -> str:
    """cmd with each placeholder replaced; each must be there (the page names them)."""
    for old, new in changes:
        assert old in cmd, (old, cmd)
        cmd = cmd.replace(old, new)
    return cmd


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # not written yet, or half written


def _members(groups: set[int]) -> list[int]:
    """Live (not zombie) processes in these process groups (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) in groups and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def last_growth(target: TargetProcess, hosts: Hosts | None = None,
                client: subprocess.Popen[bytes] | None = None, quiet_s: float = 2.0,
                timeout: float = 40.0) -> float:
    """From now on, watch the target's stored participant messages until they stood still for
    quiet_s with no WebSocket left open (and the client, if given, has ended); return the
    monotonic time they last grew, now if they never did."""
    deadline = time.monotonic() + timeout
    count, changed = target.stats()["participant_messages_stored"], time.monotonic()
    while True:
        if client is not None and hosts is not None and client.poll() is None:
            hosts.read_stderr(client, 0.2)  # a full pipe would hold it up
        else:
            pause(0.2)
        stats = target.stats()
        if stats["participant_messages_stored"] != count:
            count, changed = stats["participant_messages_stored"], time.monotonic()
        if time.monotonic() - changed >= quiet_s and stats["connections_open"] == 0 \
                and (client is None or client.poll() is not None):
            return changed
        assert time.monotonic() < deadline, f"still sending after {timeout:g} s: {stats}"


def setup_run(hosts: Hosts, target: TargetProcess,
              env: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
    (hosts.folder / "config.json").write_text(json.dumps(target.config))
    hosts.start_scheduler()
    return hosts.start_workers(env=env)


def record(scenario: str, **figures: Any) -> None:
    """For bench/scale_out.py: what this run of a scenario measured, one JSON line."""
    path = os.environ.get(RECORD_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"scenario": scenario, **figures}) + "\n")


def shards_add_up(summary: dict[str, Any]) -> None:
    shards = summary["shards"]
    assert [s["shard"] for s in shards] == [0, 1]
    assert sum(s["sent"] for s in shards) == summary["messages_sent"] > 0


@pytest.mark.exclusive  # Dask, two workers, a target: bounds on a loss
def test_readme_recipe(hosts, target):
    workers = setup_run(hosts, target)
    status, err = hosts.finish(hosts.start_client("15s"))
    assert status == 0, err
    summary, _ = load_results(hosts.folder)
    shards = summary["shards"]
    record("recipe", timelines=[s["timeline"] for s in shards],
           lost=[s["lost"] for s in shards])
    if any(s["lost"] for s in shards):
        hosts.dump_workers()  # the lost shard's process is still there, as it stopped
    assert sorted(s["worker"] for s in shards) == sorted(workers.values())
    assert {urlsplit(s["worker"]).hostname for s in shards} == set(LOAD_HOSTS)
    assert all(s["sent"] > 0 and not s["lost"] for s in shards), shards
    shards_add_up(summary)
    assert target.stats()["participant_messages_stored"] == summary["messages_sent"]
    assert summary["messages_delivered"] / summary["messages_sent"] >= 0.99
    assert all(abs(s["clock_skew_s"]) < 1 for s in shards)
    # No warning but, maybe, the generator's own health: two workers, their scheduler, the
    # client and the target share this machine's two cores, and whether that makes arrivals
    # late is this machine's business, not the recipe's.
    assert [w for w in summary["warnings"] if "generator was SUSPECT" not in w] == []


@pytest.mark.exclusive  # Dask, two workers, a target: bounds on a loss
def test_a_worker_lost_stops_the_run(hosts, target):
    workers = setup_run(hosts, target)
    client = hosts.start_client("40s")
    hosts.wait_for_progress(client, 8)
    os.killpg(hosts.workers["127.0.0.3"].pid, signal.SIGKILL)  # the host is gone
    killed = time.monotonic()
    last = last_growth(target, hosts, client)
    status, err = hosts.finish(client)
    ended = time.monotonic()
    record("worker killed", end_after_loss_s=ended - killed, load_after_loss_s=last - killed)
    assert status == 1, err
    assert last - killed < LOSS_BOUND_S, "the load went on without the lost worker"
    assert ended - killed < EXIT_BOUND_S, "the client went on without the lost worker"
    summary, _ = load_results(hosts.folder)
    lost = workers["127.0.0.3"]
    [index] = [s["shard"] for s in summary["shards"] if s["worker"] == lost]
    error = summary["first_error"]
    assert error["thread"] == f"shard-{index}@{lost}" and error["type"] == "WorkerLost", error
    assert lost in error["message"] and f"shard {index}" in error["message"]
    assert [s["lost"] for s in summary["shards"]] == [s["shard"] == index
                                                     for s in summary["shards"]]
    shards_add_up(summary)
    # The survivor was told to stop: nothing sends once the client has ended.
    assert last_growth(target) - ended < 1.0


@pytest.mark.exclusive  # Dask, two workers, a target: bounds on a loss
def test_the_scheduler_lost_stops_the_run(hosts, target):
    setup_run(hosts, target)
    # A lighter load: at -cpi 5 this machine's target lags seconds behind what it was sent.
    client = hosts.start_client("40s", env={LEASE_ENV: str(LEASE_S)}, cpi="20")
    hosts.wait_for_progress(client, 5)
    assert hosts.scheduler_proc is not None
    os.killpg(hosts.scheduler_proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    last = last_growth(target, hosts, client)
    status, err = hosts.finish(client)
    record("scheduler killed", end_after_loss_s=time.monotonic() - killed,
           load_after_loss_s=last - killed)
    assert status == 1, err
    assert last - killed < LEASE_S + 2, "load went on without the scheduler"
    assert time.monotonic() - killed < EXIT_BOUND_S, "the client went on without its scheduler"
    assert "Traceback" not in err, err
    summary, _ = load_results(hosts.folder)
    error = summary["first_error"]
    assert error["type"] == "SchedulerLost" and hosts.scheduler in error["message"], error
    # Each shard's own link to the client (engine/directlink.py) outlives the scheduler: the
    # stop reaches the shards that way, and their final reports come back the same way.
    assert [(s["link"], s["lost"]) for s in summary["shards"]] == [("direct", False)] * 2
    shards_add_up(summary)


@pytest.mark.exclusive  # Dask, two workers, a target: bounds on a loss
def test_a_killed_client_leaves_no_shard_sending(hosts, target):
    setup_run(hosts, target)
    client = hosts.start_client("40s", env={LEASE_ENV: str(LEASE_S)}, cpi="20")
    hosts.wait_for_progress(client, 4)
    client.kill()
    killed = time.monotonic()
    last = last_growth(target)
    record("client killed", load_after_loss_s=last - killed)
    assert last - killed < LEASE_S + 2
    # The workers live on: their shards' lease, not their end, stopped the load.
    for host, worker in hosts.workers.items():
        assert worker.poll() is None
        assert f"no word from the client for {LEASE_S} s; stopping" in hosts.log(f"worker-{host}")


def test_a_clock_off_by_more_than_a_second_is_a_warning(hosts, target):
    libfaketime = pytest.importorskip("libfaketime")
    _, preload = libfaketime.get_reload_information()
    ahead = {**preload, "FAKETIME": "+3s"}  # libfaketime: this process's clock 3 s ahead
    probe = subprocess.run([sys.executable, "-c", "import time; print(time.time())"],
                           env={**os.environ, **ahead}, capture_output=True, text=True,
                           timeout=30, check=True)
    if float(probe.stdout) - time.time() < 2.5:
        pytest.skip("libfaketime's preload does not move the clock here")
    workers = setup_run(hosts, target, env={"127.0.0.3": ahead})
    status, err = hosts.finish(hosts.start_client("2s"))
    assert status == 0, err
    summary, _ = load_results(hosts.folder)
    skew = {s["worker"]: s["clock_skew_s"] for s in summary["shards"]}
    assert 2.5 < skew[workers["127.0.0.3"]] < 3.5 and abs(skew[workers["127.0.0.2"]]) < 1
    [warning] = summary["warnings"]
    assert f"Dask worker {workers['127.0.0.3']} is +" in warning, warning
    assert f"warning: {warning}" in err
