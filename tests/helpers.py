"""Helpers the end-to-end tests share: config files, result files, runs of main() in-process."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from conftest import EsmeClient

from esmeperf.cli.main import main


def write_config(tmp_path: Path, config: dict[str, Any], **changes: Any) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config, **changes}))
    return path


def outputs(out: Path) -> dict[str, Path]:
    """The result files of the single run in `out`, by kind."""
    files = {}
    for kind, suffix in (("summary", "_performance_test_summary.json"),
                         ("rates", "_performance_test_message_rates.json"),
                         ("series", "_performance_test_series.csv"),
                         ("latency_log", "_performance_test_latency.hlog"),
                         ("plot", "_performance_test_rates.png"),
                         ("report", "_performance_test_report.html")):
        found = list(out.glob(f"*{suffix}"))
        assert len(found) <= 1, found
        if found:
            files[kind] = found[0]
    return files


def load_results(out: Path) -> tuple[dict[str, Any], dict[str, int]]:
    files = outputs(out)
    assert {"summary", "rates", "series"} <= set(files), files
    summary = json.loads(files["summary"].read_text())
    rates = json.loads(files["rates"].read_text())
    # The two files agree, whatever the way out was, and no worker outlived the shutdown.
    assert sum(rates.values()) == summary["messages_sent"]
    assert summary["threads_alive_after_join"] == []
    return summary, rates


def run_main(tmp_path: Path, config: Path | None, *args: str) -> int:
    out = tmp_path / "out"
    argv = ["-q", "--out", str(out), *args]
    if config is not None:
        argv += ["--config", str(config)]
    return main(argv)


def stored_participant_messages(config: dict[str, Any]) -> list[str]:
    """Message texts the target stored for the organizer's chats (problem descriptions left out)."""
    client = EsmeClient(config)
    try:
        token = client.organizer_token()
        ws = client.ws(token)
        try:
            chats = client.request(ws, "get_chats")["payload"]["chats"]
            texts = []
            for chat in chats:
                response = client.get("messenger_ws_url",
                                      f"/agency/chats/{chat['id']}/messages", token)
                assert response.status_code == 200, response.text
                texts += [m["content"] for m in response.json()
                          if not m["content"].startswith("Problem description: ")]
            return texts
        finally:
            ws.close()
    finally:
        client.close()


def own_children(marker: bytes) -> list[int]:
    """PIDs of live (not zombie) processes whose parent is this test process and whose command
    line holds `marker` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        state = stat.rsplit(")", 1)[1].split()[0]
        if ppid == os.getpid() and marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def child_targets() -> list[int]:
    """PIDs of `esmeperf.target` processes whose parent is this test process."""
    return own_children(b"esmeperf.target")


def children() -> list[int]:
    """Processes whose parent is this one (Linux /proc): none may be left behind.

    multiprocessing's resource tracker is left out: the first `--processes` run in a test
    process starts it, and it lives as long as this process by design (it is Python's, not a
    shard or a target left over).
    """
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"multiprocessing.resource_tracker" not in cmdline:
            found.append(int(entry))
    return found


ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# The pages whose shell blocks are commands a user runs as written: the README, then docs/.
PAGES = (README, *sorted((ROOT / "docs").glob("*.md")))


def readme_commands() -> list[str]:
    """Every command line of the README's shell blocks, in order."""
    return page_commands(README)


def doc_commands() -> list[str]:
    """Every command line of the README's and docs/'s shell blocks, page by page."""
    return [cmd for page in PAGES for cmd in page_commands(page)]


def page_commands(page: Path) -> list[str]:
    """Every command line of one page's shell blocks, in order."""
    lines: list[str] = []
    inside = False
    pending = ""
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```sh" and not inside
            continue
        if not inside:
            continue
        text = line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""
        if not text:
            continue
        if text.endswith("\\"):
            pending += text[:-1].strip() + " "
            continue
        lines.append(pending + text)
        pending = ""
    return lines


def command(prefix: str) -> str:
    """The one README command that is `prefix`, or else the one starting with it (so a test
    fails if it disappears)."""
    commands = doc_commands()
    found = [c for c in commands if c == prefix] or [c for c in commands if c.startswith(prefix)]
    assert len(found) == 1, f"README commands starting with {prefix!r}: {found}"
    return found[0]


def shorten(cmd: str, duration: str = "2s") -> str:
    """The command with its --duration replaced: the only change made to a README command."""
    shorter, count = re.subn(r"--duration \S+", f"--duration {duration}", cmd)
    assert count == 1, cmd
    return shorter


def scripts_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment with this interpreter's scripts (python3, esmeperf-plot, dask) first."""
    env = {**os.environ, **(extra or {})}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env
