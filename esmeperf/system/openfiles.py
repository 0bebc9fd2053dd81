"""The open-files limit: raise it at start, check a run fits in it, name it when it runs out.

Most shells start with a soft RLIMIT_NOFILE of 1,024 (macOS: 256) under a far higher hard
limit. Every participant holds a socket, so the soft limit, not the machine, would end a run
at about a thousand participants; Go programs raise the soft limit to the hard one at start
(Go 1.19+), and so does esmeperf, for itself and (by inheritance) its target and shards.
"""

from __future__ import annotations

import errno
import math
import sys
from dataclasses import dataclass

from . import platform_support

try:
    import resource
except ImportError:  # Windows: no rlimits, and nothing to raise
    resource = None  # type: ignore[assignment]

# macOS refuses a soft limit above OPEN_MAX (10,240) even where the hard limit is "unlimited".
_DARWIN_OPEN_MAX = 10240
# Descriptors a generator process holds besides its participants: stdio, the logging and
# result files, the epoll/selector and wake-up pipes, the shard pipes, the embedded target's
# pipes, the organizers' sockets, shared libraries opened by matplotlib. Measured at about 40
# in a run with one organizer; the margin covers HTTP connections still closing.
BASE_DESCRIPTORS = 64
# Per participant: its WebSocket, plus its sign-up connection for the moment the two overlap.
PER_PARTICIPANT = 1.05
OUT_OF_FILES = (errno.EMFILE, errno.ENFILE)
# The soft limit this process started with, once raise_soft_limit() has raised it (the log
# says "raised from 1,024 to ..."); None while it has not.
_raised_from: int | None = None


def limits() -> tuple[int, int] | None:
    """(soft, hard) open-files limits of this process, or None where there are none (Windows,
    and --portable, which runs as if: nothing raised, nothing refused, no warning)."""
    if resource is None or not platform_support.active().rlimits:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


def raise_soft_limit() -> int | None:
    """Raise the soft open-files limit as far as the hard one allows; return the new soft one."""
    current = limits()
    if current is None:
        return None
    soft, hard = current
    wanted = hard
    if sys.platform == "darwin":
        wanted = min(hard, _DARWIN_OPEN_MAX)
    if wanted == resource.RLIM_INFINITY:  # limits() said resource exists
        wanted = _system_maximum() or soft
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return soft  # the platform refused: run with what we have (check() says so)
        global _raised_from
        if _raised_from is None:
            _raised_from = soft
        soft = wanted
    return soft


def describe() -> str:
    """The limit as a run's log names it: `raised from 1,024 to 20,000 (hard 20,000)`, or
    `20,000 (hard 20,000)` when it was not raised here, or `none`."""
    current = limits()
    if current is None:
        return "none"
    soft, hard = current
    text = f"{_count(soft)} (hard {_count(hard)})"
    if _raised_from is not None and _raised_from < soft:
        text = f"raised from {_count(_raised_from)} to {text}"
    return text


def _count(limit: int) -> str:
    return "unlimited" if limit == resource.RLIM_INFINITY else f"{limit:,}"


def _system_maximum() -> int | None:
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def descriptors_needed(participants: int) -> int:
    """Descriptors one process needs to hold `participants` participants at once."""
    return BASE_DESCRIPTORS + math.ceil(participants * PER_PARTICIPANT)


def participants_within(limit: int) -> int:
    """How many participants one process can hold under `limit` descriptors."""
    return max(0, math.floor((limit - BASE_DESCRIPTORS) / PER_PARTICIPANT))


@dataclass(frozen=True)
class Plan:
    """What a run asks of the open-files limit, per process."""

    participants: int | None  # planned in all; None: no bound (no --duration, no maximum)
    bounded_by_maximum: bool  # --max-participants alone sets the count
    processes: int  # generator processes sharing the participants
    embedded_target: bool  # the target on this machine holds every participant's socket too

    def per_process(self) -> int | None:
        if self.participants is None:
            return None
        return math.ceil(self.participants / self.processes)


def plan(max_participants: int | None, duration: float | None, cpi_ms: float,
         processes: int, embedded_target: bool, by_schedule: int | None = None) -> Plan:
    """The participants a run plans: its maximum, or the arrivals its duration leaves time for
    (`by_schedule`: what --stages create in it, a count as certain as a maximum)."""
    by_duration = None if duration is None else math.floor(duration * 1000 / cpi_ms) + 1
    if by_schedule is not None:
        max_participants = min(by_schedule, max_participants or by_schedule)
        by_duration = None
    counts = [n for n in (max_participants, by_duration) if n is not None]
    participants = min(counts) if counts else None
    bounded = max_participants is not None and (by_duration is None
                                                or max_participants <= by_duration)
    return Plan(participants, bounded, processes, embedded_target)


def check(run: Plan, soft: int | None) -> tuple[str, bool] | None:
    """None when the run fits; else the one-line problem with its remedy, and whether it is
    certain (--max-participants alone sets the count) or only possible (the duration may)."""
    if soft is None or (resource is not None and soft == resource.RLIM_INFINITY):
        return None
    remedy = remedy_for(run.embedded_target)
    holders = [("the generator", run.per_process())]
    if run.embedded_target:
        holders.append(("the embedded target", run.participants))
    for who, count in holders:
        if count is None:
            return (f"open files limited to {soft}: with no --duration or --max-participants, "
                    f"{who} runs out of them after about {participants_within(soft)} "
                    f"participants; {remedy}", False)
        needed = descriptors_needed(count)
        if needed > soft:
            return (f"{count} participants need about {needed} open files in {who}, but the "
                    f"limit is {soft}; {remedy}", run.bounded_by_maximum)
    return None


def is_out_of_files(exc: BaseException) -> bool:
    """Whether EMFILE/ENFILE is anywhere in the exception's chain (urllib3 wraps it deep)."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, OSError) and item.errno in OUT_OF_FILES:
            return True
        # requests.ConnectionError(MaxRetryError(reason=NewConnectionError(...OSError)))
        todo.extend([item.__cause__, item.__context__, getattr(item, "reason", None),
                     *item.args])
    text = str(exc)
    return any(f"[Errno {code}]" in text for code in OUT_OF_FILES)


def remedy_for(embedded_target: bool) -> str:
    """What lets a run hold more participants. The embedded target is a child of esmeperf:
    it has esmeperf's limit and holds every participant's socket, however many --processes
    share the generator's side; a process may raise its soft limit only up to its hard one,
    so only a higher hard limit (set as root, or a service's) helps it, or a target started
    apart under one."""
    if embedded_target:
        return ("raise the hard limit (ulimit -Hn as root, or LimitNOFILE= for a service): "
                "the embedded target, esmeperf's child, has esmeperf's limit and holds every "
                "participant's socket; or start esmeperf-target yourself under a higher limit "
                "(its --ready-file is a config.json for --config)")
    return ("raise the hard limit (ulimit -Hn, or LimitNOFILE= for a service) or spread the "
            "participants with --processes N or a Dask cluster")


def out_of_files_message(thread: str, embedded_target: bool = False) -> str:
    """The first error's message when a worker ran out of descriptors."""
    where = thread.replace("participant-", "participant ")
    text = f"{OUT_OF_FILES_TEXT} (limit {_limit()}) at {where}: "
    if embedded_target:
        return text + remedy_for(True)
    return text + "raise ulimit -n or use --processes"


def target_out_of_files(limit: int | None = None) -> str:
    """What the first error adds when the embedded target ran out of descriptors."""
    return (f"the embedded target ran out of open files, limit "
            f"{_limit() if limit is None else limit}: {remedy_for(True)}")


def with_target_out_of_files(message: str, limit: int | None = None) -> str:
    """The first error's message, saying the embedded target ran out of descriptors too, with
    the remedy once."""
    if message.endswith(remedy_for(True)):  # a worker ran out as well, and said what helps
        return f"{message} (the embedded target ran out of them too)"
    return f"{message} ({target_out_of_files(limit)})"


def _limit() -> str:
    current = limits()
    return "unknown" if current is None else str(current[0])


OUT_OF_FILES_TEXT = "out of open files"  # how the first error's message starts
