"""The run's life: its states and stop reasons, the worker threads, the shards, the signals."""
