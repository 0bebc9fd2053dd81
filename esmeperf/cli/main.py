"""Command line: `python -m esmeperf -sci 10 -cpi 20 -smi 100 [--config config.json] ...`."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shlex
import sys
import tempfile
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import __version__
from ..config import Gates, Output, Settings, load_target, timespan
from ..engine.signals import Lifecycle
from ..errors import ConfigError
from ..jobs.job import Dask, Job, run_job
from ..status import EXIT_STATUS_HELP, ExitStatus
from ..system import openfiles, platform_support
from ..usage import Parser, positive_float
from ..verdict.gates import GATES

log = logging.getLogger("esmeperf")

DEFAULT_CONFIG = "config.json"
CONFIG_HELP = """config.json keys (ESME's own; without a config the embedded target is used):
  event_id             the event participants ask for help at (int)
  messenger_ws_url     ws://host:8300 (no trailing slash; /connect is appended)
  organizer_api_url    http://host:8000
  organizer_email      an organizer of the event's agency (role 2-4)
  organizer_password   its password (never logged or written to results)
  participant_api_url  http://host:8100
  organizers           optional: [{"email": ..., "password": ...}] for --organizers N"""


EXAMPLES = """examples:
  python3 -m esmeperf -sci 10 -cpi 20 -smi 1000 --duration 30s
      ESME's scenario for 30 s against the embedded target
  python3 -m esmeperf -sci 10 -cpi 20 -smi 100 --config config.json --duration 5m
      the same against a real ESME deployment
  python3 -m esmeperf -sci 10 -cpi 20 -smi 100,1000,10000 --repeat 3 --duration 2m --out runs
      ESME's table, each run three times, with overlays, a scatter and report.md"""


def _positive_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected milliseconds, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"must be a positive number of milliseconds, got {text!r}")
    return value


def _ms_list(text: str) -> list[float]:
    """One interval, or a comma list of them for a sweep: "100" or "100,1000,10000"."""
    return [_positive_ms(part.strip()) for part in text.split(",")]


def _parsed_by(module: str, function: str) -> Callable[[str], Any]:
    """An argparse type from a parser elsewhere that raises ValueError with the reason; the
    module is imported only when the flag is given (--help and the man page need none)."""

    def parse(text: str) -> Any:
        parser = getattr(importlib.import_module(module, __package__), function)
        try:
            return parser(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = function
    return parse


_cluster = _parsed_by("..engine.dask", "parse_cluster")
_stages = _parsed_by("..measure.schedule", "parse_stages")
_surge = _parsed_by("..scenario.surge", "parse_window")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    if text.strip() in ("0", "0.0"):
        return 0.0
    return positive_float(text)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, got {text!r}")
    return value


def _span(text: str) -> float:
    try:
        return timespan(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def get_parser() -> argparse.ArgumentParser:
    """The esmeperf argument parser (also the source of the man page)."""
    parser = Parser(
        prog="esmeperf",
        # Wrapped here: the raw formatter keeps the epilog's tables as written.
        description=textwrap.fill(
            "Load-test ESME's Messenger API the way ESME's own Go performance test does: one "
            "organizer starts a chat every SCI ms, a participant arrives every CPI ms, signs up, "
            "asks for help and sends a message every SMI ms. Without a config.json an embedded "
            "ESME-compatible target is started on loopback.", 78),
        epilog=f"{EXIT_STATUS_HELP}\n\n{CONFIG_HELP}\n\n{EXAMPLES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scenario = parser.add_argument_group("scenario (the Go test's flags)")
    scenario.add_argument("-sci", "--start-chat-interval", dest="sci", type=_ms_list,
                          default=[1000.0], metavar="MS",
                          help="start chat interval (default 1000); a comma list sweeps")
    scenario.add_argument("-cpi", "--create-participant-interval", dest="cpi",
                          type=_ms_list, default=None, metavar="MS",
                          help="create participant interval (default 1000); arrivals follow "
                          "a fixed grid however slow sign-up is; a comma list sweeps")
    scenario.add_argument("--stages", type=_stages, default=None, metavar="D:R[,D:R...]",
                          help="instead of -cpi: arrivals per second R, ramping linearly over "
                          "each stage's duration D from the previous stage's end rate (0 before "
                          "the first), e.g. 5s:10,10s:10,5s:0 (150 participants); a 0s stage "
                          "is a sudden step (0s:10,30s:10: 10 a second from the start); the run "
                          "ends after the last stage unless --duration says otherwise")
    scenario.add_argument("--surge", type=_surge, default=None, metavar="FROM-TO",
                          help="the surge of help requests, e.g. 60s-80s from the first "
                          "arrival's origin: participants are told apart by cohort (arrived "
                          "before, during, after it) and messages by phase; default with "
                          "--stages: the ramp into the peak rate and the stages holding it")
    scenario.add_argument("-smi", "--send-message-interval", dest="smi", type=_ms_list,
                          default=[1000.0], metavar="MS",
                          help="send message interval per participant (default 1000); a comma "
                          "list sweeps")
    scenario.add_argument("-logWs", "--log-ws", dest="log_ws", action="store_true",
                          help="log every WebSocket message sent and received")
    run = parser.add_argument_group("run")
    run.add_argument("--config", type=Path, default=None, metavar="PATH",
                     help=f"ESME target config (default: ./{DEFAULT_CONFIG} if it exists, "
                     "otherwise the embedded target)")
    run.add_argument("--duration", type=_span, default=None, metavar="SPAN",
                     help="stop after this long, e.g. 30s, 5m (default: until the first error "
                     "or a signal, as the original)")
    run.add_argument("--max-participants", type=_positive_int, default=None, metavar="N",
                     help="create at most N participants (the run goes on with them)")
    run.add_argument("--find-capacity", action="store_true",
                     help="search for the knee: steps holding 16, 32, 64 ... active chats "
                     "(arrivals and -sci chosen by the search), then bisect, within --duration "
                     "(default 10m); a step fails on sends made < 0.99 x due, delivered < "
                     "0.999, rtt p99 > --max-p99 (default 1000) or an error, unless the "
                     "generator was saturated in it; writes the capacity object and a "
                     "capacity PNG")
    run.add_argument("--start-chats", type=_positive_int, default=None, metavar="N",
                     help="--find-capacity's first step (default 16): start the search where "
                     "it is interesting")
    run.add_argument("--repeat", type=_positive_int, default=1, metavar="N",
                     help="run every interval combination N times; the embedded target is "
                     "restarted between runs; overlay graphs, a scatter and report.md follow")
    run.add_argument("--organizers", type=_positive_int, default=1, metavar="N",
                     help="organizer workers starting chats (default 1)")
    run.add_argument("--processes", type=_positive_int, default=1, metavar="N",
                     help="spread the participant workers over N processes (each with its own "
                     "GIL); the organizers, the stop and the results stay in this one")
    run.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="run the participant shards on this Dask scheduler "
                     "(e.g. tcp://scheduler:8786), one per worker; needs esmeperf[distributed]")
    run.add_argument("--cluster", default=None, metavar="local:N", type=_cluster,
                     help="run the participant shards on a Dask LocalCluster of N worker "
                     "processes on this machine")
    run.add_argument("--reply", action="store_true",
                     help="organizers answer every participant message; participants measure "
                     "the reply latency")
    run.add_argument("--rest-only", action="store_true",
                     help="the arrivals' REST calls alone: organizers sign in, each participant "
                     "signs up and files its chat request at the -cpi rate (sign-up and chat "
                     "request latencies), and no WebSocket is opened; for a target without "
                     "its messenger, such as ESME's own REST APIs (contrib/esme-real)")
    run.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                     help="directory for the result files (default: current directory)")
    run.add_argument("--summary-export", type=Path, default=None, metavar="PATH",
                     help="also write the summary JSON to PATH, a name that does not change "
                     "from run to run (replaced if it exists; its directory must exist); not "
                     "with a sweep or --repeat")
    run.add_argument("--no-plot", dest="plot", action="store_false",
                     help="do not draw the PNG at the end")
    run.add_argument("--no-report", dest="html_report", action="store_false",
                     help="do not write the HTML reports (each run's "
                     "<unix>_performance_test_report.html, a sweep's report.html, a capacity "
                     "search's)")
    run.add_argument("--target-args", default="", metavar="ARGS",
                     help="extra arguments for the embedded target, quoted as one, e.g. "
                     "--target-args '--stats-delay 1' (see esmeperf-target --help)")
    timeouts = parser.add_argument_group("timeouts (seconds)")
    timeouts.add_argument("--http-timeout", type=positive_float, default=10.0, metavar="S",
                          help="connect and read timeout of every REST call (default 10)")
    timeouts.add_argument("--handshake-timeout", type=positive_float, default=45.0,
                          metavar="S", help="WebSocket handshake (default 45, as gorilla)")
    timeouts.add_argument("--chat-timeout", type=positive_float, default=30.0, metavar="S",
                          help="wait for a participant's chat to start (default 30)")
    timeouts.add_argument("--echo-timeout", type=positive_float, default=5.0, metavar="S",
                          help="after the stop, wait this long for outstanding echoes "
                          "(default 5)")
    timeouts.add_argument("--join-timeout", type=positive_float, default=10.0, metavar="S",
                          help="wait this long for threads to end at shutdown (default 10)")
    timeouts.add_argument("--stall-timeout", type=_non_negative_float, default=10.0,
                          metavar="S", help="a message or start_chat unanswered this long "
                          "stops the run as an error, end reason 'stall' (default 10; "
                          "0 turns the check off)")
    gates = parser.add_argument_group("gates (exit status 3 when one fails)")
    for gate in GATES:  # each gate's flag, from its one definition (verdict/gates.py)
        if gate.switch:
            gates.add_argument(gate.flag, dest=gate.limit_key, action="store_true",
                               help=gate.help)
        else:
            gates.add_argument(gate.flag, dest=gate.limit_key, type=gate.parse, default=None,
                               metavar=gate.metavar, help=gate.help)
    gates.add_argument("--abort-on-fail", action="store_true",
                       help="also check the gates once a second over the last 10 s of the run; "
                       "a breach stops it as the first error does (files written, end reason "
                       "'gate', exit 3)")
    output = parser.add_argument_group("output")
    output.add_argument("-q", "--quiet", action="store_true",
                        help="print only the final line (and warnings) on stderr; the "
                        "summary table still goes to stdout")
    output.add_argument("--debug", action="store_true",
                        help="debug logs, full tracebacks, thread dumps on SIGUSR1/SIGQUIT "
                        "(with --portable: SIGUSR1; on Windows: Ctrl-Break)")
    output.add_argument("--portable", action="store_true",
                        help="use every portable fallback, as on macOS and Windows: no batched "
                        "reads (receive time from the clock after recv, not the kernel), socket "
                        "timeouts, process_time CPU, no open-files limit; also "
                        "ESMEPERF_PORTABLE=1; the summary's platform key says what a run used")
    output.add_argument("--metrics-port", type=_port, default=None, metavar="PORT",
                        help="serve live Prometheus metrics on http://HOST:PORT/metrics for "
                        "the whole job (0: any free port, logged); a port in use is exit 2")
    output.add_argument("--metrics-host", default=None, metavar="HOST",
                        help="address the metrics endpoint listens on (default 127.0.0.1; "
                        "0.0.0.0 or :: to let other hosts scrape it)")
    output.add_argument("--version", action="version", version=f"esmeperf {__version__}")
    return parser


def resolve_arrivals(args: argparse.Namespace) -> None:
    """-cpi or --stages, not both; with --stages the run lasts the stages unless --duration."""
    if args.stages is not None:
        if args.cpi is not None:
            raise ConfigError("give -cpi or --stages, not both (--stages replaces -cpi's grid)")
        if args.duration is None:
            args.duration = sum(duration for duration, _ in args.stages)
            args.duration_source = "--stages"
    if args.cpi is None:
        args.cpi = [1000.0]


def settings_from_args(args: argparse.Namespace) -> Settings:
    limits = Gates(**{gate.limit_key: getattr(args, gate.limit_key) for gate in GATES})
    if args.abort_on_fail and not limits:
        raise ConfigError("--abort-on-fail needs a gate: "
                          + ", ".join(gate.flag for gate in GATES[:-1])
                          + f" or {GATES[-1].flag}")
    return Settings(
        sci=args.sci[0], cpi=args.cpi[0], smi=args.smi[0], log_ws=args.log_ws,
        duration=args.duration, max_participants=args.max_participants,
        duration_source=getattr(args, "duration_source", None)
        or ("--duration" if args.duration is not None else None),
        http_timeout=args.http_timeout, handshake_timeout=args.handshake_timeout,
        chat_timeout=args.chat_timeout, echo_timeout=args.echo_timeout,
        join_timeout=args.join_timeout, stall_timeout=args.stall_timeout,
        stages=args.stages or (), surge=args.surge, abort_on_fail=args.abort_on_fail,
        organizers=args.organizers,
        processes=args.processes, reply=args.reply, rest_only=args.rest_only,
        gates=limits,
    )


def output_from_args(args: argparse.Namespace) -> Output:
    return Output(out_dir=args.out, summary_export=args.summary_export, quiet=args.quiet,
                  plot=args.plot, html_report=args.html_report)


def check_out_dir(path: Path) -> None:
    """Refuse an output directory we cannot write before the run starts."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".esmeperf-write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(f"--out {path}: not a writable directory ({exc.strerror})") from None


def check_summary_export(path: Path, runs: int) -> None:
    """Refuse a --summary-export we cannot write, or one a sweep would overwrite run after run
    (each run of a sweep has its summary in its own directory, report.md compares them)."""
    if runs > 1:
        raise ConfigError(f"--summary-export {path}: not with a sweep or --repeat (each run's "
                          "summary is in its own directory under --out)")
    if path.is_dir():
        raise ConfigError(f"--summary-export {path}: is a directory, give a file name")
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".esmeperf-write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(f"--summary-export {path}: cannot write in {path.parent} "
                          f"({exc.strerror})") from None


def attach_dash_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """`--duration -1s` -> `--duration=-1s`: a value that starts with a dash is still the
    option's value (argparse would say "expected one argument"), so its own check can say
    what is wrong with it. Known options are left alone."""
    takes_value = {opt for action in parser._actions if action.nargs is None
                   and action.option_strings and not isinstance(action, _FLAG_ACTIONS)
                   for opt in action.option_strings}
    known = {opt for action in parser._actions for opt in action.option_strings}
    out: list[str] = []
    values = iter(argv)
    for arg in values:
        if arg in takes_value:
            value = next(values, None)
            if value is not None and value.startswith("-") and value not in known:
                out.append(f"{arg}={value}")
                continue
            out.append(arg)
            if value is not None:
                out.append(value)
            continue
        out.append(arg)
    return out


_FLAG_ACTIONS = (argparse._StoreTrueAction, argparse._StoreFalseAction,  # noqa: SLF001
                 argparse._VersionAction, argparse._HelpAction)


def check_open_files(args: argparse.Namespace, embedded: bool) -> None:
    """Raise the soft open-files limit, then refuse (or warn of) a run that cannot fit in it."""
    soft = openfiles.raise_soft_limit()
    log.debug("open files limit: %s", "none" if soft is None else soft)
    if args.scheduler:
        return  # the participants live on the Dask workers, which raise their own limits
    by_schedule = None
    if args.stages:
        from ..measure.schedule import Schedule

        by_schedule = Schedule(stages=args.stages).arrivals_by(args.duration)
    plan = openfiles.plan(args.max_participants, args.duration, min(args.cpi),
                          processes=args.cluster or args.processes, embedded_target=embedded,
                          by_schedule=by_schedule)
    problem = openfiles.check(plan, soft)
    if problem is None:
        return
    text, certain = problem
    if certain:
        raise ConfigError(text)
    log.warning("warning: %s", text)


def setup_logging(debug: bool, quiet: bool = False) -> None:
    """Go-style log lines on stderr: `2023/05/01 12:00:00 message`; -q keeps warnings only."""
    log.setLevel(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y/%m/%d %H:%M:%S"))
    log.addHandler(handler)


def command() -> int:
    """The command line's esmeperf (`python -m esmeperf`, bin/esmeperf): main(), then a single
    run's figures drawn in this process's place once its memory is no longer needed
    (plot/child.py); returns the exit status where nothing is left to draw."""
    from ..plot import child

    return child.exec_pending(main(draw_last=True))


def main(argv: Sequence[str] | None = None, draw_last: bool = False) -> int:
    """Run esmeperf; return the exit status (see EXIT_STATUS_HELP). `draw_last`: a single
    run's figures wait for plot.child.exec_pending() (command())."""
    parser = get_parser()
    try:
        args = parser.parse_args(attach_dash_values(parser, sys.argv[1:] if argv is None
                                                    else list(argv)))
    except SystemExit as exc:  # --help, --version, or bad input already reported in one line
        return int(exc.code or 0)
    setup_logging(args.debug, args.quiet)
    with platform_support.portable_env(args.portable):  # shards inherit it with os.environ
        mechanisms = platform_support.active()
        log.debug("platform: %s", mechanisms.summary())
        if args.debug:
            platform_support.install_thread_dump(mechanisms)
        lifecycle = Lifecycle()
        try:
            with lifecycle.installed():
                return _job(args, lifecycle, draw_last)
        except KeyboardInterrupt:  # checking, or the target or cluster starting: nothing ran
            print("esmeperf: interrupted before the run started", file=sys.stderr)
            return ExitStatus.INTERRUPTED


def _find_capacity(args: argparse.Namespace, settings: Settings, output: Output, job: Job,
                   runs: int) -> int:
    """--find-capacity: the search chooses the arrivals and -sci itself (capacity.py)."""
    clash = [flag for flag, given in (("-cpi", args.cpi != [1000.0] or runs > 1),
                                      ("--stages", args.stages), ("--surge", args.surge),
                                      ("--repeat", args.repeat > 1),
                                      ("--abort-on-fail", args.abort_on_fail)) if given]
    if clash:
        print(f"esmeperf: error: --find-capacity chooses the arrivals itself: not with "
              f"{', '.join(clash)} (nor interval lists)", file=sys.stderr)
        return ExitStatus.USAGE
    from ..jobs.capacity import START_CHATS, find_capacity, measured_by

    return find_capacity(settings, output, measured_by(
        lambda step, step_output, on_result: run_job(step, step_output, job, on_result),
        debug=job.debug), start_chats=args.start_chats or START_CHATS)


def _job(args: argparse.Namespace, lifecycle: Lifecycle, draw_last: bool = False) -> int:
    """Check the flags and the config, then run the job (a sweep when intervals are lists)."""
    try:
        resolve_arrivals(args)
        settings, output = settings_from_args(args), output_from_args(args)
        check_out_dir(output.out_dir)
        runs = len(args.sci) * len(args.cpi) * len(args.smi) * args.repeat
        if output.summary_export is not None:
            check_summary_export(output.summary_export, runs)
        config_path = args.config
        if config_path is None and os.path.exists(DEFAULT_CONFIG):
            config_path = Path(DEFAULT_CONFIG)
        target = load_target(config_path) if config_path is not None else None
        if target is not None and args.config is None:
            # It may name a real deployment: say so before anything is sent to it.
            log.warning("using ./%s found in the current directory: target %s",
                        DEFAULT_CONFIG, urlsplit(target.messenger_ws_url).netloc)
        if target is not None and args.organizers > len(target.organizers):
            raise ConfigError(
                f"--organizers {args.organizers}: {config_path} holds "
                f"{len(target.organizers)} organizer account(s) (organizer_email and "
                "organizers[])")
        try:
            target_args = shlex.split(args.target_args)
        except ValueError as exc:
            raise ConfigError(f"--target-args: {exc}") from None
        if (args.scheduler or args.cluster) and args.processes > 1:
            raise ConfigError("--processes does not go with --scheduler/--cluster "
                              "(there, one shard runs per Dask worker)")
        if args.scheduler and args.cluster:
            raise ConfigError("give --scheduler or --cluster, not both")
        dask = Dask(args.scheduler, args.cluster) if args.scheduler or args.cluster else None
        lacking = platform_support.refusal(args.processes, target is None,
                                           platform_support.active())
        if lacking is not None:
            raise ConfigError(lacking)
        if dask is not None:
            from ..engine.dask import require_distributed

            require_distributed()
        check_open_files(args, embedded=target is None)
    except ConfigError as exc:
        print(f"esmeperf: error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    if runs > 1 and settings.duration is None:
        print("esmeperf: error: a sweep or --repeat needs --duration", file=sys.stderr)
        return ExitStatus.USAGE
    live = None
    if args.metrics_port is not None or args.metrics_host is not None:
        from ..measure.live import serve

        try:  # listening from here on: a port in use is found before any load
            live = serve(args.metrics_host, args.metrics_port)
        except ConfigError as exc:
            print(f"esmeperf: error: {exc}", file=sys.stderr)
            return ExitStatus.USAGE
    job = Job(target, tuple(target_args), args.debug, lifecycle, dask, live)
    try:
        if args.find_capacity:
            return _find_capacity(args, settings, output, job, runs)
        if runs > 1:
            from ..jobs.sweep import matrix, run_sweep

            plan = matrix(settings, output, args.sci, args.cpi, args.smi, args.repeat)
            return run_sweep(plan, lambda s, o: run_job(s, o, job), output.out_dir)
        if draw_last:
            from ..plot import child

            child.defer()
        return run_job(settings, output, job)
    finally:
        if live is not None:
            live.close()
