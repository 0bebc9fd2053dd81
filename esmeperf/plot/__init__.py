"""esmeperf-plot and the PNGs of runs."""

from .command import main

__all__ = ["main"]
