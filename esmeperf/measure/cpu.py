"""CPU: this process's, another's (the embedded target's), and a meter of both per second."""

from __future__ import annotations

import os
import time

from ..system import platform_support
from .lag import RecentLoad
from .stats import Metrics


def cpu_seconds() -> float:
    """User plus system CPU time of this whole process so far: getrusage where `resource`
    exists, else time.process_time() (the same sum; Windows has no `resource`)."""
    if platform_support.active().getrusage:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    return time.process_time()


def process_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU of another process (Linux /proc), None where unknown (macOS and
    Windows have no /proc, and --portable acts as if: the series' target_cpu stays empty)."""
    if not platform_support.active().proc_stat:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class CpuMeter:
    """CPU milliseconds per second: this process's (shards add their own), and the embedded
    target's where its pid is known. Read once a tick of `interval` seconds; a tick's CPU goes
    to the second its middle fell in.
    """

    def __init__(self, metrics: Metrics, target_pid: int | None, interval: float,
                 recent: RecentLoad) -> None:
        self._metrics, self._target_pid, self._interval = metrics, target_pid, interval
        self._recent = recent
        self._last = cpu_seconds()
        self._last_target = process_cpu_seconds(target_pid) if target_pid else None

    def tick(self) -> None:
        second = int(time.time() - self._interval / 2)
        now = cpu_seconds()
        used_ms = round((now - self._last) * 1000)
        self._metrics.generator_cpu_ms.add(second, used_ms)
        self._recent.cpu(second, used_ms)
        self._last = now
        if self._target_pid and self._last_target is not None:
            target = process_cpu_seconds(self._target_pid)
            if target is not None:
                self._metrics.target_cpu_ms.add(second,
                                                round((target - self._last_target) * 1000))
                self._last_target = target
