"""What is counted while the load runs: counters, latencies, pacing, health, live metrics."""
