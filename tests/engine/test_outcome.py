"""The engine finishes its Outcome and writes nothing but its progress, where it is told to
(issue 39): what a run does (Settings) and what it writes (Output) are apart."""

from __future__ import annotations

import dataclasses
import io

from esmeperf.config import Output, Settings, Target
from esmeperf.engine.run import Engine


def test_the_engine_finishes_its_outcome_and_shows_progress_only_where_told(target, capsys):
    assert {f.name for f in dataclasses.fields(Settings)}.isdisjoint(
        f.name for f in dataclasses.fields(Output))
    config = Target.from_mapping(target.config, "the test's target", embedded=True)
    settings = Settings(sci=10, cpi=50, smi=100, duration=1.0, max_participants=4)
    shown = io.StringIO()
    outcome = Engine(config, settings, embedded=target, progress=shown).run()
    assert outcome.end_reason == "duration" and outcome.first_error is None
    # Finished inside: the target's own figures read, nothing left for a caller to add.
    assert outcome.target_stats is not None and outcome.target_stats["participants"] == 4
    assert outcome.target_handling and outcome.shard_group is None
    lines = shown.getvalue().splitlines()
    assert lines and all("rtt p99 (last s)" in line for line in lines)
    # Without a stream, no progress line anywhere: the engine has no flag of its own to read.
    capsys.readouterr()
    quiet = Engine(config, settings, embedded=target).run()
    assert quiet.end_reason == "duration"
    captured = capsys.readouterr()
    assert "rtt p99 (last s)" not in captured.out + captured.err
