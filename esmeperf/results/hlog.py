"""The latency log, `<unix>_performance_test_latency.hlog`: every latency of a run, one
HdrHistogram interval per Unix second and metric, written with hdrhistogram's
HistogramLogWriter and readable by its HistogramLogReader and the standard HdrHistogram tools
(HistogramLogProcessor, HdrHistogramVisualizer).

Values are microseconds. Each interval line is tagged with the metric's key in the summary's
`latency` (Tag=message_rtt, Tag=send_lateness, ...), so adding a tag's intervals gives back that
entry's count, percentiles and max exactly: the log is made from the run's own histograms
(a --processes or Dask run's merged ones), not from a copy.
"""

from __future__ import annotations

import binascii
import io
import os
import time
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from hdrh.codec import HdrCookieException, HdrHistogramSettingsException, HdrLengthException
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader, HistogramLogWriter

from .. import __version__
from ..measure.latency import new_histogram

if TYPE_CHECKING:
    from ..measure.latency import LatencyRecorder

MAX_UNIT_RATIO = 1000.0  # the Interval_Max column in milliseconds (the values are in us)
# What HistogramLogReader raises on a corrupt line: a bad timestamp, base64, cookie or zlib.
_CORRUPT = (ValueError, TypeError, IndexError, binascii.Error, zlib.error, HdrCookieException,
            HdrLengthException, HdrHistogramSettingsException)


def hlog_text(recorders: Mapping[str, LatencyRecorder]) -> str:
    """The log's text: a header, then each second's intervals in time order, one per tag.

    Timestamps are absolute Unix seconds (BaseTime 0), as HistogramLogReader reads them when
    the StartTime header is the first interval's second.
    """
    lines = sorted((second, tag, interval) for tag, recorder in recorders.items()
                   for second, interval in recorder.intervals())
    out = io.StringIO()
    writer = HistogramLogWriter(out)
    writer.output_log_format_version()
    start = lines[0][0] if lines else int(time.time())
    # Not writer.output_start_time(): hdrhistogram 0.10 calls a datetime method that does not
    # exist there. The same line as the Java writer's, by hand.
    stamp = time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(start))
    writer.output_comment(f"[StartTime: {start:.3f} (seconds since epoch), {stamp}]")
    writer.output_base_time(0)
    writer.output_comment(f"[esmeperf {__version__}: values in microseconds, one interval per "
                          f"Unix second and tag; tags: {', '.join(recorders)}]")
    writer.output_legend()
    for second, tag, interval in lines:
        # HistogramLogWriter writes no tags (it ignores get_tag()): the Tag= prefix goes first.
        out.write(f"Tag={tag},")
        writer.output_interval_histogram(interval, second, second + 1, MAX_UNIT_RATIO)
    return out.getvalue()


def read_hlog(path: str | os.PathLike[str]) -> dict[str, HdrHistogram]:
    """Each tag's intervals added up (the whole run's histogram of that metric), read with
    HistogramLogReader. ValueError for a file that is not an interval log."""
    totals: dict[str, HdrHistogram] = {}
    reader = HistogramLogReader(os.fspath(path), new_histogram(3))
    try:
        while True:
            interval = reader.get_next_interval_histogram()
            if interval is None:
                break
            tag = interval.get_tag() or ""
            if tag in totals:
                totals[tag].add(interval)
            else:
                totals[tag] = interval
    except _CORRUPT as exc:
        raise ValueError(f"not an HdrHistogram interval log ({exc})") from None
    finally:
        reader.close()
    return totals


def read_intervals(path: str | os.PathLike[str], tag: str) -> list[tuple[int, HdrHistogram]]:
    """One tag's intervals, each with its Unix second, in the log's order. ValueError for a
    file that is not an interval log."""
    out = []
    reader = HistogramLogReader(os.fspath(path), new_histogram(3))
    try:
        while True:
            interval = reader.get_next_interval_histogram()
            if interval is None:
                break
            if (interval.get_tag() or "") == tag:
                out.append((int(interval.get_start_time_stamp() / 1000), interval))
    except _CORRUPT as exc:
        raise ValueError(f"not an HdrHistogram interval log ({exc})") from None
    finally:
        reader.close()
    return out
