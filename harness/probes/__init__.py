"""Probes take readings around the timed steps: host memory here; energy and telemetry join later."""
