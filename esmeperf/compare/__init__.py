"""esmeperf-compare: did a new run regress against a base?"""

from .command import main

__all__ = ["main"]
