"""The command line: the parser, the checks of flags and config, and the man pages."""

from .main import get_parser, main

__all__ = ["get_parser", "main"]
