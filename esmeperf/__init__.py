"""esmeperf: a thread-based load generator for ESME's Messenger API."""

__version__ = "0.1.0"
