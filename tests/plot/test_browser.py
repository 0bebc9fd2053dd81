"""Each kind of HTML report (a run's, a sweep's, a capacity search's, a comparison's) in a real
browser: Debian's chromium, headless, driven over the DevTools protocol on a pipe and, where one
can be made (root), in a network namespace of its own, so nothing could be fetched if the page
asked. Each page loads without a console error or a request beyond its own file, prints to PDF,
takes a screenshot, and its rendered text holds the summary's numbers as the JSON has them."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import skip_unless_required
from saved_runs import SavedRun, capacity_search, copy_run, surge_run

from esmeperf.compare.command import main as compare
from esmeperf.plot.command import main as plot_main
from esmeperf.plot.html import number
from esmeperf.verdict import words

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.slow
TIMEOUT = 30.0


def _own_network_namespace() -> list[str]:
    """`unshare -n` where it works: the browser then has no network at all."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    done = subprocess.run([unshare, "-n", "true"], capture_output=True, check=False)
    return [unshare, "-n"] if done.returncode == 0 else []


class Browser:
    """chromium --remote-debugging-pipe: commands in on fd 3, replies and events out on fd 4,
    each a JSON message ended by a NUL."""

    def __init__(self, profile: Path) -> None:
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()
        # Out of the way of 3 and 4, which the child's own copies must become.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser)]

        def child_fds() -> None:
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.isolated = bool(_own_network_namespace())
        self.process = subprocess.Popen(
            [*_own_network_namespace(), str(CHROMIUM), "--headless", "--no-sandbox",
             "--disable-gpu", "--remote-debugging-pipe", f"--user-data-dir={profile}",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-default-apps", "--disable-sync", "--hide-scrollbars", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            pass_fds=(3, 4), preexec_fn=child_fds)
        for fd in (to_browser, from_browser, *high):
            os.close(fd)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        reply = self._wait(lambda m: m.get("id") == self._next)
        assert "error" not in reply, (method, reply)
        result: dict[str, Any] = reply["result"]
        return result

    def wait_event(self, method: str, session: str) -> dict[str, Any]:
        return self._wait(lambda m: m.get("method") == method
                          and m.get("sessionId") == session)

    def _wait(self, wanted: Any) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if wanted(message):
                    return dict(message)
            left = deadline - time.monotonic()
            assert left > 0, "chromium did not answer in time"
            ready, _, _ = select.select([self._in], [], [], left)
            if ready:
                chunk = os.read(self._in, 1 << 20)
                assert chunk, "chromium closed its pipe: " + self._stderr()
                self._buffer += chunk

    def _stderr(self) -> str:
        self.process.kill()
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace")[-2000:]

    def open(self, page: Path) -> Loaded:
        """Load the page in a new tab; its text, PDF, screenshot and what it asked for."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target,
                            flatten=True)["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(f"{domain}.enable", session)
        self.send("Emulation.setDeviceMetricsOverride", session, width=1280, height=900,
                  deviceScaleFactor=1, mobile=False)
        start = len(self.events)
        url = page.resolve().as_uri()
        self.send("Page.navigate", session, url=url)
        self.wait_event("Page.loadEventFired", session)
        text = self.send("Runtime.evaluate", session, expression="document.body.innerText",
                         returnByValue=True)["result"]["value"]
        png = base64.b64decode(self.send("Page.captureScreenshot", session, format="png",
                                         captureBeyondViewport=True)["data"])
        pdf = base64.b64decode(self.send("Page.printToPDF", session, printBackground=True)
                               ["data"])
        events = [e for e in self.events[start:] if e.get("sessionId") == session]
        self.send("Target.closeTarget", targetId=target)
        return Loaded(url, text, png, pdf, events)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (AssertionError, OSError):
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        for fd in (self._in, self._out):
            os.close(fd)
        if self.process.stderr is not None:
            self.process.stderr.close()


class Loaded:
    def __init__(self, url: str, text: str, png: bytes, pdf: bytes,
                 events: list[dict[str, Any]]) -> None:
        self.url, self.text, self.png, self.pdf = url, " ".join(text.split()), png, pdf
        self.requests = [e["params"]["request"]["url"] for e in events
                         if e["method"] == "Network.requestWillBeSent"]
        self.errors = [e["params"] for e in events
                       if e["method"] == "Runtime.exceptionThrown"
                       or e["method"] == "Runtime.consoleAPICalled"
                       and e["params"]["type"] in ("error", "assert", "warning")
                       or e["method"] == "Log.entryAdded"
                       and e["params"]["entry"]["level"] in ("error", "warning")]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    if CHROMIUM is None:
        skip_unless_required("chromium", "Debian's chromium is not installed (.ci/run installs "
                             "it: apt-get install chromium)")
    opened = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(scope="module")
def surge(tmp_path_factory: pytest.TempPathFactory) -> SavedRun:
    return surge_run(tmp_path_factory)


@pytest.fixture(scope="module")
def pages(surge: SavedRun, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One report of each kind, made from the session's real run."""
    root = tmp_path_factory.mktemp("pages")
    sweep = root / "sweep"
    for name in ("01_sci10_cpi1000_smi250_r1", "02_sci10_cpi1000_smi250_r2"):
        copy_run(surge, sweep / name)
    assert plot_main(["--html", str(sweep)]) == 0
    capacity_search(root / "capacity", surge)  # writes its report (not its steps')
    assert compare([str(surge.folder), str(sweep / "01_sci10_cpi1000_smi250_r1"), "--html",
                    str(root / "compare.html")]) == 0
    return {"run": surge.report, "sweep": sweep / "report.html",
            "capacity": next((root / "capacity").glob("*_report.html")),
            "compare": root / "compare.html"}


def expected_text(kind: str, surge: SavedRun) -> list[str]:
    """Figures each page must show, written as the summary JSON writes them."""
    s = surge.summary
    rtt = s["latency"]["message_rtt"]
    if kind == "run":
        latencies = [number(entry[k]) for entry in s["latency"].values() if entry["count"]
                     for k in ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms")]
        return [s["run_id"], f"messages sent {s['messages_sent']}",
                f"delivered {s['messages_delivered']}", f"round trip p99 (ms) {rtt['p99_ms']}",
                "Exit status 0", *latencies]
    if kind == "sweep":
        return ["01_sci10_cpi1000_smi250_r1", "02_sci10_cpi1000_smi250_r2",
                words.ratio(s["delivered_ratio"]), number(rtt["p99_ms"])]
    if kind == "capacity":
        return ["Knee 40 chats, 400 messages/s; limited by the target", "01_chats16",
                "rtt p99 1800.0 ms > 1000 ms"]
    return ["Verdict: no regression", f"round trip p99 (ms) {rtt['p99_ms']:.3f}"]


@pytest.mark.parametrize("kind", ["run", "sweep", "capacity", "compare"])
def test_each_report_in_a_real_browser(browser, pages, surge, kind, tmp_path):
    loaded = browser.open(pages[kind])
    assert loaded.errors == []
    assert loaded.requests == [loaded.url]  # its own file, and nothing else
    for figure in expected_text(kind, surge):
        assert figure in loaded.text, (kind, figure)
    assert loaded.png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", loaded.png[16:24])
    assert width == 1280 and height > 900  # the whole page, not the first screen
    assert loaded.pdf.startswith(b"%PDF-") and loaded.pdf.count(b"/Type /Page\n") + \
        loaded.pdf.count(b"/Type /Page>") + loaded.pdf.count(b"/Type /Page ") >= 1
    (tmp_path / f"{kind}.png").write_bytes(loaded.png)  # to look at when a test fails
    (tmp_path / f"{kind}.pdf").write_bytes(loaded.pdf)


def test_the_browser_had_no_network(browser):
    """Where the test runs as root, chromium runs in a network namespace of its own."""
    if os.geteuid() == 0 and shutil.which("unshare"):
        assert browser.isolated
    else:
        pytest.skip("unshare -n needs root: the request log above is the check")
