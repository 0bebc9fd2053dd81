"""The loop every worker runs on its socket: act on a fixed grid, read every frame between."""

from __future__ import annotations

import time
from collections.abc import Callable

from .connection import Connection
from .context import Context


def run_paced(ctx: Context, conn: Connection, interval: float,
              on_due: Callable[[float, float], None], on_frame: Callable[[str], None],
              on_skip: Callable[[int], None], offset: float = 0.0) -> None:
    """Call on_due(now, lateness) at start + offset + k x interval, on_frame(frame) for
    every frame.

    The grid is absolute, so sends never drift. A slot missed by a whole interval or more is
    skipped and reported with on_skip(count) instead of being sent late in a burst (k6 calls
    these dropped iterations). After the stop only frames are read, until the shutdown closes
    the socket (the Closed that ends the loop then is not an error: see Context.hold).
    """
    start = time.monotonic() + offset
    slot = 1
    while True:
        if ctx.stop.is_set():
            timeout = None
        else:
            now = time.monotonic()
            due = start + slot * interval
            if now >= due:
                late = now - due
                if late >= interval:
                    skipped = int(late / interval)
                    on_skip(skipped)
                    slot += skipped
                    late -= skipped * interval
                on_due(now, late)
                slot += 1
                continue
            timeout = due - now
        frame = conn.recv(timeout)  # Closed ends the loop; Context.hold tells whose it was
        if frame is not None:
            on_frame(frame)
