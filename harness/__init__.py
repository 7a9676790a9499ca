"""tribench's engine: planning, worker processes, timing, statistics, probes, run files.

It imports the shared vocabulary (``tribench.core``), the workloads and the backend registry, never a
report or the command line."""
