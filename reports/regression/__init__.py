"""Regression tracking: A/B comparison (``compare``, its metrics, statistics and renderings), history
across runs with change points (``history``, ``changepoint`` and its renderings), exports for CI tools
(``export``) and the synthetic run files that calibrate the verdicts (``synthetic``)."""
