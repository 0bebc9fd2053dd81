"""The loop every worker runs on its socket: act on a fixed grid, read every frame between."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..transport.connection import Connection
from .context import Context


def run_paced(ctx: Context, conn: Connection, interval: float,
              on_due: Callable[[float, float], None], on_frame: Callable[[str], None],
              on_skip: Callable[[int, float], None], start: float | None = None) -> None:
    """Call on_due(now, lateness) at start + k x interval (k from 1; `start`: a
    time.monotonic() value, now by default), on_frame(frame) for every frame.

    The grid is absolute, so sends never drift. Slots missed by a whole interval or more are
    skipped and reported with on_skip(count, lateness of the oldest of them) instead of being
    sent late in a burst (k6 calls these dropped iterations); skipped slot j (from 0) was
    late by that lateness less j intervals when it was given up. After the stop only frames
    are read, until the shutdown closes the socket (the Closed that ends the loop then is not
    an error: see Context.hold); the slots a whole interval overdue when the stop is seen (a
    thread kept from running) count as skipped too.

    The wait for the next slot ends at the slot itself (Connection.recv_until: ppoll()
    where the platform has one), not at a receive timeout the kernel rounds up.
    """
    start = time.monotonic() if start is None else start
    slot = 1
    stopped = False
    while True:
        if ctx.stop.is_set():
            if not stopped:  # slots a whole interval overdue by now were missed, as in a run
                stopped = True
                late = time.monotonic() - (start + slot * interval)
                if late >= interval:
                    on_skip(int(late / interval), late)
            wait_until = None
        else:
            now = time.monotonic()
            due = start + slot * interval
            if now >= due:
                late = now - due
                if late >= interval:
                    skipped = int(late / interval)
                    on_skip(skipped, late)
                    slot += skipped
                    late -= skipped * interval
                on_due(now, late)
                slot += 1
                continue
            wait_until = due
        # Closed ends the loop; Context.hold tells whose it was.
        frame = conn.recv_until(wait_until)
        if frame is not None:
            on_frame(frame)
