"""Exit statuses of esmeperf (listed in --help, the man page and the README)."""

from enum import IntEnum


class ExitStatus(IntEnum):
    """How a run ended, as the process exit code."""

    OK = 0  # ended as planned (duration reached) with every gate passed
    ERROR = 1  # stopped by the first error in any worker
    USAGE = 2  # bad command line or config; nothing ran
    THRESHOLD = 3  # ended as planned but a gate (--max-p99, ...) failed
    INTERRUPTED = 130  # stopped by SIGINT or SIGTERM


EXIT_STATUS_HELP = """exit status:
  0    the run ended as planned and every gate passed
  1    the run was stopped by the first error (results written),
       or the embedded target could not start (nothing ran)
  2    usage or configuration error, or --max-participants over the
       open-files limit (nothing ran)
  3    the run ended but a gate (--max-p99, --min-delivered-ratio, --min-rate,
       --fail-on-suspect) failed, or --abort-on-fail stopped it when one failed over
       the last 10 s (results written)
  130  interrupted by SIGINT or SIGTERM (results written)"""
