"""What a run targets (`Target`, from config.json) and how it runs (`Settings`, from the CLI)."""

from __future__ import annotations

import json
import os
import re
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
        """Validate a parsed config.json; every problem is a ConfigError naming the key."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        for key in CONFIG_KEYS:
            if key not in data:
                raise ConfigError(f"{source}: missing key {key!r}")
        event_id = data["event_id"]
        if not isinstance(event_id, int) or isinstance(event_id, bool):
            raise ConfigError(f"{source}: key 'event_id' must be an integer")
        urls = {}
        for key, schemes in _URL_SCHEMES.items():
            urls[key] = _check_url(data[key], key, schemes, source)
        organizers = [_credentials(data, source)]
        extra = data.get("organizers", [])
        if not isinstance(extra, list):
            raise ConfigError(f"{source}: key 'organizers' must be a list of {{email, password}}")
        for index, item in enumerate(extra):
            creds = _credentials(item, source, prefix=f"organizers[{index}].")
            # An account may be listed again (organizer_email first in organizers[], as the
            # embedded target writes it), but with one password: a second would go unused.
            same = [c for c in organizers if c.email == creds.email]
            if same and same[0].password != creds.password:
                raise ConfigError(f"{source}: organizers[{index}] repeats the account "
                                  f"{creds.email!r} with another password")
            if not same:
                organizers.append(creds)
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


def _check_url(value: Any, key: str, schemes: tuple[str, ...], source: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{source}: key {key!r} must be a string")
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        wanted = " or ".join(f"{s}://" for s in schemes)
        raise ConfigError(f"{source}: key {key!r} must be a {wanted} URL, got {value!r}")
    return value.rstrip("/")


def _credentials(data: Any, source: str, prefix: str = "organizer_") -> Credentials:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.')} must be an object")
    values = []
    for name in ("email", "password"):
        key = f"{prefix}{name}"
        value = data.get(name if prefix.endswith(".") else key)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{source}: key {key!r} must be a non-empty string")
        values.append(value)
    return Credentials(*values)


def load_target(path: str | os.PathLike[str]) -> Target:
    """Read and validate a config.json file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    return Target.from_mapping(data, source)


@dataclass(frozen=True)
class Gates:
    """Pass/fail thresholds checked when the run ends (exit status 3 on failure)."""

    max_p99_ms: float | None = None
    min_delivered_ratio: float | None = None
    min_rate: float | None = None
    fail_on_suspect: bool = False  # --fail-on-suspect: a suspect generator fails the run


@dataclass(frozen=True)
class Settings:
    """How the run behaves; intervals in milliseconds, other times in seconds."""

    sci: float = 1000
    cpi: float = 1000
    smi: float = 1000
    log_ws: bool = False
    duration: float | None = None
    max_participants: int | None = None
    out_dir: Path = Path(".")
    summary_export: Path | None = None  # a fixed path for the summary JSON, besides out_dir's
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
    gates: Gates = Gates()
    quiet: bool = False
    # The summary table (stdout) and the final line (stderr) at the end of the run; the
    # capacity search's steps print one line each instead (capacity.py).
    report: bool = True
    debug: bool = False
    plot: bool = True

    def public(self) -> dict[str, Any]:
        """The settings as written into the summary."""
        return {
            "sci_ms": self.sci,
            "cpi_ms": self.cpi,
            "smi_ms": self.smi,
            "duration_s": self.duration,
            "max_participants": self.max_participants,
            "organizers": self.organizers,
            "processes": self.processes,
            "reply": self.reply,
            "http_timeout_s": self.http_timeout,
            "handshake_timeout_s": self.handshake_timeout,
            "chat_timeout_s": self.chat_timeout,
            "echo_timeout_s": self.echo_timeout,
            "stall_timeout_s": self.stall_timeout,
            "stages": [list(stage) for stage in self.stages] or None,
            "surge_s": list(self.surge) if self.surge else None,
            "abort_on_fail": self.abort_on_fail,
            "gates": {k: v for k, v in vars(self.gates).items() if v not in (None, False)},
        }


_SPAN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def timespan(text: str) -> float:
    """Parse "30s", "5m", "1.5h", "250ms" or bare seconds into positive seconds."""
    match = _SPAN.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"expected a positive time span such as 30s, 5m or 1h, got {text!r}")
    return float(match.group(1)) * _UNIT[match.group(2)]
