"""What a run writes and reads back: the summary, the series, the latency log, the table."""
