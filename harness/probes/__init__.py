"""Probes take readings around the timed steps: host memory (``memory``), energy and device telemetry
(``energy``: readings and the window; ``rapl``, ``nvml``: sources; ``baseline``: idle power), and
evidence of a disturbed machine (``disturbance``: steal, CPU pressure, context switches, the verdict)."""
