"""What a run targets (`Target`, from config.json) and how it runs (`Settings`, from the CLI)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

# The longest send (or start_chat) interval in ms whose reads are batched: a worker's answers
# wait in its socket until its next send is due (connection.Connection.batch_reads).
BATCH_MAX_MS = 1000

# The original's six keys, in its order (ESME tests/performance/config/config.go).
CONFIG_KEYS = (
    "event_id",
    "messenger_ws_url",
    "organizer_api_url",
    "organizer_email",
    "organizer_password",
    "participant_api_url",
)
_URL_SCHEMES = {
    "messenger_ws_url": ("ws", "wss"),
    "organizer_api_url": ("http", "https"),
    "participant_api_url": ("http", "https"),
}


@dataclass(frozen=True)
class Credentials:
    """An organizer's sign-in; the password never reaches logs or files."""

    email: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Target:
    """The ESME deployment under test, as config.json describes it."""

    event_id: int
    messenger_ws_url: str
    organizer_api_url: str
    participant_api_url: str
    organizers: tuple[Credentials, ...]
    embedded: bool = False

    @classmethod
    def from_mapping(cls, data: Any, source: str, embedded: bool = False) -> Target:
        """Validate a parsed config.json: a ConfigError naming every key that is wrong, one
        line each, so one edit can mend them all."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        problems = [f"missing key {key!r}" for key in CONFIG_KEYS if key not in data]
        event_id: Any = data.get("event_id")
        if "event_id" in data and (not isinstance(event_id, int) or isinstance(event_id, bool)):
            problems.append(f"key 'event_id' must be an integer, got {_shown(event_id)}")
        urls = {}
        for key, schemes in _URL_SCHEMES.items():
            if key in data:
                urls[key] = _check_url(data[key], key, schemes, problems)
        organizers: list[Credentials] = []
        first = (_credentials(data, problems) if "organizer_email" in data
                 and "organizer_password" in data else None)
        if first is not None:
            organizers.append(first)
        extra = data.get("organizers", [])
        if not isinstance(extra, list):
            problems.append("key 'organizers' must be a list of {email, password}")
            extra = []
        for index, item in enumerate(extra):
            creds = _credentials(item, problems, prefix=f"organizers[{index}].")
            if creds is None:
                continue
            # An account may be listed again (organizer_email first in organizers[], as the
            # embedded target wrote it before), but with one password: a second would go unused.
            same = [c for c in organizers if c.email == creds.email]
            if same and same[0].password != creds.password:
                problems.append(f"organizers[{index}] repeats the account {creds.email!r} with "
                                "another password")
            if not same:
                organizers.append(creds)
        if problems:
            raise ConfigError(_problems(source, problems))
        return cls(event_id=event_id, organizers=tuple(organizers), embedded=embedded, **urls)

    def public(self) -> dict[str, Any]:
        """The target as it may appear in output files: no passwords."""
        return {
            "event_id": self.event_id,
            "messenger_ws_url": self.messenger_ws_url,
            "organizer_api_url": self.organizer_api_url,
            "participant_api_url": self.participant_api_url,
            "organizer_emails": [c.email for c in self.organizers],
            "embedded": self.embedded,
        }


def _problems(source: str, problems: list[str]) -> str:
    """One line for one problem; for several, a line saying so and one line each."""
    if len(problems) == 1:
        return f"{source}: {problems[0]}"
    return "\n  ".join([f"{source}: {len(problems)} problems:", *problems])


def _shown(value: Any) -> str:
    """A wrong value as the file has it, cut short."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_url(value: Any, key: str, schemes: tuple[str, ...], problems: list[str]) -> str:
    if not isinstance(value, str):
        problems.append(f"key {key!r} must be a string, got {_shown(value)}")
        return ""
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        wanted = " or ".join(f"{s}://" for s in schemes)
        problems.append(f"key {key!r} must be a {wanted} URL, got {value!r}")
    return value.rstrip("/")


def _credentials(data: Any, problems: list[str],
                 prefix: str = "organizer_") -> Credentials | None:
    if not isinstance(data, dict):
        problems.append(f"{prefix.rstrip('.')} must be an object {{email, password}}")
        return None
    values: list[str] = []
    for name in ("email", "password"):
        key = f"{prefix}{name}"
        value = data.get(name if prefix.endswith(".") else key)
        if isinstance(value, str) and value:
            values.append(value)
        else:
            problems.append(f"key {key!r} must be a non-empty string")
    return Credentials(*values) if len(values) == 2 else None


def load_target(path: str | os.PathLike[str]) -> Target:
    """Read and validate a config.json file."""
    source = str(path)
    try:
        # utf-8-sig: a byte-order mark (Notepad's) is no mistake worth a refusal
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                          f"offset {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: {json_mistake(text, exc)}") from None
    return Target.from_mapping(data, source)


def json_mistake(text: str, exc: json.JSONDecodeError) -> str:
    """Where the JSON went wrong and how, with its line quoted and a caret under the spot.

    The decoder notices a trailing comma, or a missing one, only at the next value; the
    mistake is at the comma, or where the comma should be, so that is where this points.
    """
    pos, what = exc.pos, exc.msg[:1].lower() + exc.msg[1:]
    before = text[:pos].rstrip()
    if before.endswith(",") and text[pos:pos + 1] in ("}", "]"):
        pos, what = len(before) - 1, (f"a trailing comma before {text[exc.pos]!r} (JSON allows "
                                      "none)")
    elif exc.msg == "Expecting ',' delimiter" and len(before) < pos:
        pos, what = len(before), "expected ',' after this value (is a comma missing?)"
    elif not text.strip():
        return "empty file, expected a JSON object"
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line = text[line_start:None if line_end < 0 else line_end]
    lineno, column = text.count("\n", 0, pos) + 1, pos - line_start + 1
    return (f"invalid JSON at line {lineno}, column {column}: {what}\n"
            + _caret(line, column))


def _caret(line: str, column: int, width: int = 76) -> str:
    """The line (tabs expanded, cut to `width` around the column) and a caret under it."""
    head = line[:column - 1].expandtabs(8)
    line = line.rstrip("\r").expandtabs(8)
    start = max(0, len(head) - width // 2) if len(line) > width else 0
    shown = ("..." if start else "") + line[start:start + width]
    indent = len(head) - start + (3 if start else 0)
    return f"  {shown}\n  {' ' * indent}^"


class Gates(Mapping[str, Any]):
    """The limits of the gates a run set, by each gate's key (esmeperf/verdict/gates.py defines
    the gates): `Gates(max_p99_ms=50, fail_on_suspect=True)`. A gate not set (None, False) is
    absent. Checked when the run ends (exit status 3 on a failure), and over a sliding window
    with --abort-on-fail."""

    def __init__(self, **limits: Any) -> None:
        self._limits = {key: value for key, value in limits.items()
                        if value is not None and value is not False}

    def __getitem__(self, key: str) -> Any:
        return self._limits[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._limits)

    def __len__(self) -> int:
        return len(self._limits)

    def __hash__(self) -> int:
        return hash(frozenset(self._limits.items()))

    def __repr__(self) -> str:
        return f"Gates({', '.join(f'{k}={v!r}' for k, v in self._limits.items())})"


@dataclass(frozen=True)
class Output:
    """What a run writes and shows, apart from what it does (Settings): the engine never reads
    it. A sweep's runs and a capacity search's steps each have their own."""

    out_dir: Path = Path(".")
    summary_export: Path | None = None  # a fixed path for the summary JSON, besides out_dir's
    quiet: bool = False  # no progress line a second
    # The summary table (stdout) and the final line (stderr) at the end of the run; the
    # capacity search's steps print one line each instead (capacity.py).
    report: bool = True
    plot: bool = True
    html_report: bool = True  # each run's, sweep's and search's HTML report (--no-report: none)


@dataclass(frozen=True)
class Settings:
    """How the run behaves (what it writes is Output's); intervals in milliseconds, other
    times in seconds."""

    sci: float = 1000
    cpi: float = 1000
    smi: float = 1000
    log_ws: bool = False
    duration: float | None = None
    duration_source: str | None = None  # "--duration", or "--stages": their total
    max_participants: int | None = None
    http_timeout: float = 10.0
    handshake_timeout: float = 45.0
    chat_timeout: float = 30.0
    echo_timeout: float = 5.0
    join_timeout: float = 10.0
    stall_timeout: float = 10.0  # 0: no stall detection
    # --stages: (duration s, end rate arrivals/s) each; empty: -cpi's fixed grid
    stages: tuple[tuple[float, float], ...] = ()
    # --surge: (from, to) seconds from the arrival grid's origin; None: from the stages, if any
    surge: tuple[float, float] | None = None
    abort_on_fail: bool = False  # --abort-on-fail: the gates, over a sliding window, stop a run
    organizers: int = 1
    processes: int = 1
    reply: bool = False
    # --rest-only: organizers sign in, participants sign up and file their chat requests; no
    # WebSocket is opened (a target without a messenger: ESME's REST APIs alone)
    rest_only: bool = False
    gates: Gates = Gates()

    def public(self) -> dict[str, Any]:
        """The settings as written into the summary."""
        return {
            "sci_ms": self.sci,
            "cpi_ms": None if self.stages else self.cpi,  # --stages replaces -cpi's grid
            "smi_ms": self.smi,
            "duration_s": self.duration,
            "duration_source": self.duration_source,
            "max_participants": self.max_participants,
            "organizers": self.organizers,
            "processes": self.processes,
            "reply": self.reply,
            "rest_only": self.rest_only,
            "http_timeout_s": self.http_timeout,
            "handshake_timeout_s": self.handshake_timeout,
            "chat_timeout_s": self.chat_timeout,
            "echo_timeout_s": self.echo_timeout,
            "stall_timeout_s": self.stall_timeout,
            "stages": [list(stage) for stage in self.stages] or None,
            "surge_s": list(self.surge) if self.surge else None,
            "abort_on_fail": self.abort_on_fail,
            "gates": dict(self.gates),
        }


_SPAN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def timespan(text: str) -> float:
    """Parse "30s", "5m", "1.5h", "250ms" or bare seconds into positive seconds."""
    match = _SPAN.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"expected a positive time span such as 30s, 5m or 1h, got {text!r}")
    return float(match.group(1)) * _UNIT[match.group(2)]
