"""tribench's engine: case specs, runner, worker, timing, stats, probes, results, CLI."""

__version__ = "0.1.0"
