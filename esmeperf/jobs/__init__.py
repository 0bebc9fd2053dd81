"""What a command runs: one run, a sweep of runs, a capacity search."""
