"""Command line of the embedded target: `get_parser()` for the man page and `main()`."""

from __future__ import annotations

import argparse
import logging
import os
import stat
import sys
import textwrap
from collections.abc import Callable, Sequence

from .. import __version__
from ..status import help_text
from ..usage import Parser

DEFAULT_PASSWORD = "esmeperf-organizer-pass"
DEFAULT_EMAIL = "organizer@esmeperf.local"


def _ranged(kind: Callable[[str], int | float], low: float, name: str) -> Callable[[str], object]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {name}: {text!r}") from None
        if value < low or value != value:
            raise argparse.ArgumentTypeError(f"must be >= {low:g}: {text!r}")
        return value
    return parse


def port(text: str) -> int:
    """A TCP port 0-65535 (0 = ephemeral)."""
    value = _ranged(int, 0, "port")(text)
    if not isinstance(value, int) or value > 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535: {text!r}")
    return value


count = _ranged(int, 0, "count")
positive = _ranged(int, 1, "number")
seconds = _ranged(float, 0, "seconds")


_DURATION_UNITS = {"ms": 0.001, "s": 1.0}


def duration(text: str) -> float:
    """Seconds from a duration: 50ms, 0.5s, or a bare number of seconds."""
    number, scale = text, 1.0
    for unit in sorted(_DURATION_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            number, scale = text[: -len(unit)], _DURATION_UNITS[unit]
            break
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid duration: {text!r} (e.g. 50ms, 0.5s or 2)") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be 0 to 1 hour: {text!r}")
    return value


def fd(text: str) -> int:
    """An inherited, open file descriptor number."""
    value = int(text) if text.isdigit() else -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid file descriptor: {text!r}")
    try:
        os.fstat(value)
    except OSError:
        raise argparse.ArgumentTypeError(f"file descriptor {value} is not open") from None
    return value


def pipe_fd(text: str) -> int:
    """An inherited pipe, FIFO or socket descriptor (something epoll can watch for EOF)."""
    value = fd(text)
    if not (stat.S_ISFIFO(os.fstat(value).st_mode) or stat.S_ISSOCK(os.fstat(value).st_mode)):
        raise argparse.ArgumentTypeError(f"file descriptor {value} is not a pipe or socket")
    return value


def ready_path(text: str) -> str:
    """A file the ready JSON can be written to: its directory exists and is writable.

    Checked before any port is bound, so a typo costs one line, not a bound server.
    """
    if not text:
        raise argparse.ArgumentTypeError("empty path")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a directory")
    directory = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(directory):
        raise argparse.ArgumentTypeError(f"{text}: no such directory: {directory}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text}: directory {directory} is not writable")
    return text


def get_parser() -> argparse.ArgumentParser:
    """The argument parser (argparse-manpage builds the man page from it)."""
    p = Parser(
        prog="esmeperf-target",
        # Wrapped here: the raw formatter keeps the exit statuses' table as written.
        description=textwrap.fill(
            "ESME-compatible stand-in server: organizer API, participant API and Messenger API "
            "(WebSocket) in one asyncio process backed by SQLite. Wire-compatible with ESME's "
            "own performance test. Once listening it prints one line on stderr, "
            "'esmeperf-target: ready: ...' with the three URLs; --ready-file/--ready-fd report "
            "readiness as a config.json object.", 78, break_on_hyphens=False),
        epilog=help_text("esmeperf-target"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"esmeperf-target {__version__}")
    net = p.add_argument_group("listeners")
    net.add_argument("--host", default="127.0.0.1",
                     help="address to bind all three listeners to (default: %(default)s; "
                     "IPv6 literals such as ::1 are bracketed in the URLs)")
    net.add_argument("--organizer-port", type=port, default=8000, metavar="PORT",
                     help="organizer API port, 0 = ephemeral (default: %(default)s)")
    net.add_argument("--participant-port", type=port, default=8100, metavar="PORT",
                     help="participant API port, 0 = ephemeral (default: %(default)s)")
    net.add_argument("--messenger-port", type=port, default=8300, metavar="PORT",
                     help="Messenger API port (WebSocket /connect, REST, /stats), "
                     "0 = ephemeral (default: %(default)s)")
    data = p.add_argument_group("data and accounts")
    data.add_argument("--db", metavar="PATH",
                      help="SQLite database file (WAL mode); reused if it exists "
                      "(default: a temporary directory removed at exit)")
    data.add_argument("--organizer-email", default=DEFAULT_EMAIL, metavar="EMAIL",
                      help="email of the first seeded organizer (default: %(default)s)")
    data.add_argument("--organizer-password", default=DEFAULT_PASSWORD, metavar="PASSWORD",
                      help="password of every seeded organizer, 16-128 characters as "
                      "organizer-api requires (default: %(default)s)")
    data.add_argument("--organizers", type=positive, default=1, metavar="N",
                      help="seed N organizers of agency 1 with role 2 (agency owner); the k-th "
                      "(k >= 2) gets the email organizer<k>@esmeperf.local (default: %(default)s)")
    data.add_argument("--pbkdf2-iterations", type=positive, default=2000, metavar="N",
                      help="PBKDF2-SHA256 iterations for password hashes. Deliberately cheap: "
                      "ESME uses bcrypt cost 12 (~0.25 s per hash), which would dominate a "
                      "load test signing up ~50 participants/s on a small box; hashing runs "
                      "in a thread pool (default: %(default)s)")
    ready = p.add_argument_group("readiness and lifetime")
    ready.add_argument("--ready-file", type=ready_path, metavar="PATH",
                       help="once all listeners accept, atomically write the ready JSON "
                       "(ESME's config.json keys, then 'organizers', the accounts after the "
                       "first, and 'pid') to PATH; removed again at exit")
    ready.add_argument("--ready-fd", type=fd, metavar="FD",
                       help="write the ready JSON as one line to the inherited FD, then close it")
    ready.add_argument("--watch-fd", type=pipe_fd, metavar="FD",
                       help="inherited read end of a pipe; shut down cleanly when it reports "
                       "EOF (the parent died or closed it)")
    ws = p.add_argument_group("messenger limits")
    ws.add_argument("--send-buffer", type=positive, default=1024 * 1024, metavar="BYTES",
                    help="per-connection bound on unsent outbound bytes. A frame that would "
                    "exceed it is dropped for that connection only and counted in "
                    "frames_dropped, so a client that never reads cannot slow other chats "
                    "(default: %(default)s)")
    ws.add_argument("--max-frame", type=positive, default=64 * 1024, metavar="BYTES",
                    help="largest accepted inbound WebSocket message; a bigger one closes the "
                    "connection with code 1009 (default: %(default)s)")
    ws.add_argument("--auth-timeout", type=seconds, default=60.0, metavar="S",
                    help="how long a new connection may take to send its authorization "
                    "frame before it is dropped silently, as ESME (default: %(default)s)")
    faults = p.add_argument_group("fault injection (for tests)")
    faults.add_argument("--refuse-ws-after", type=count, metavar="N",
                        help="refuse WebSocket handshakes after the first N with HTTP 503 "
                        "before the upgrade (counted in handshakes_refused)")
    faults.add_argument("--ws-handshake-delay", type=seconds, default=0.0, metavar="S",
                        help="delay every WebSocket handshake by S seconds")
    faults.add_argument("--close-after-messages", type=positive, metavar="N",
                        help="silently close a participant connection (no close frame) once it "
                        "has sent N send_message frames on it")
    faults.add_argument("--error-frame-after", type=count, metavar="N",
                        help="answer the (N+1)-th send_message frame of each participant "
                        "connection with error 'internal server error' instead of storing it")
    faults.add_argument("--fail-signup-after", type=count, metavar="N",
                        help="sign-ups after the first N valid ones get 500 'database error'")
    faults.add_argument("--fail-chat-request-after", type=count, metavar="N",
                        help="chat requests after the first N valid ones get 500 "
                        "'database error'")
    faults.add_argument("--garbage-signup-after", type=count, metavar="N",
                        help="sign-ups after the first N valid ones get 201 with the body "
                        "{\"unexpected\": true} and create no user")
    faults.add_argument("--stats-delay", type=seconds, default=0.0, metavar="S",
                        help="answer GET /stats only after S seconds")
    faults.add_argument("--message-delay", type=duration, default=0.0, metavar="DURATION",
                        help="hold every participant send_message frame DURATION (50ms, 0.5s, "
                        "or seconds) before it is checked, stored and fanned out, in order; "
                        "other connections are served meanwhile. A latency regression for "
                        "esmeperf-compare's tests")
    p.add_argument("--log-level", default="warning",
                   choices=["debug", "info", "warning", "error"],
                   help="stderr log level; nothing is logged per message at any level "
                   "(default: %(default)s)")
    return p


def organizer_accounts(email: str, password: str, n: int) -> list[tuple[str, str]]:
    """The seeded organizers: the given email first, then organizer<k>@esmeperf.local."""
    return [(email, password)] + [(f"organizer{k}@esmeperf.local", password)
                                  for k in range(2, n + 1)]


def raise_open_files_limit() -> str:
    """Soft RLIMIT_NOFILE up to the hard limit (every client holds a socket), as Go does; the
    limit as the log names it: `raised from 1,024 to 20,000 (hard 20,000)`.

    The generator has its own copy (esmeperf/system/openfiles.py): the target imports nothing
    from it.
    """
    try:
        import resource
    except ImportError:  # Windows
        return "none"
    start, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = start
    wanted = min(hard, 10240) if sys.platform == "darwin" else hard  # macOS: OPEN_MAX
    if wanted != resource.RLIM_INFINITY and wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass  # refused: serve with what we have; clients beyond it get errors

    def count(limit: int) -> str:
        return "unlimited" if limit == resource.RLIM_INFINITY else f"{limit:,}"

    text = f"{count(soft)} (hard {count(hard)})"
    return f"raised from {count(start)} to {text}" if soft > start else text


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the target, return the exit status."""
    parser = get_parser()
    args = parser.parse_args(argv)
    if not 16 <= len(args.organizer_password) <= 128:
        parser.error("--organizer-password must be 16-128 characters (organizer-api rule)")
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="esmeperf-target: %(levelname)s %(name)s: %(message)s")
    logging.getLogger("esmeperf.target").info("open files limit: %s", raise_open_files_limit())
    # Imported here: argparse-manpage builds the man page from get_parser() at install time,
    # where aiohttp may not be importable yet.
    from .models import Faults
    from .server import Options, run

    opts = Options(
        host=args.host, organizer_port=args.organizer_port,
        participant_port=args.participant_port, messenger_port=args.messenger_port,
        db=args.db,
        organizers=organizer_accounts(args.organizer_email, args.organizer_password,
                                      args.organizers),
        ready_file=args.ready_file, ready_fd=args.ready_fd, watch_fd=args.watch_fd,
        pbkdf2_iterations=args.pbkdf2_iterations, send_buffer=args.send_buffer,
        max_frame=args.max_frame, auth_timeout=args.auth_timeout,
        faults=Faults(refuse_ws_after=args.refuse_ws_after,
                      ws_handshake_delay=args.ws_handshake_delay,
                      close_after_messages=args.close_after_messages,
                      error_frame_after=args.error_frame_after,
                      fail_signup_after=args.fail_signup_after,
                      fail_chat_request_after=args.fail_chat_request_after,
                      garbage_signup_after=args.garbage_signup_after,
                      stats_delay=args.stats_delay,
                      message_delay=args.message_delay))
    return run(opts)
