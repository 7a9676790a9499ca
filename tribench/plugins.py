"""What a workload plugin imports: ``Workload``, ``BuildRequest`` and ``Parts`` (defined in ``suites.plugins``,
which documents the contract). Importing this module imports no framework."""

from tribench.suites.plugins import BuildRequest, Parts, Workload

__all__ = ["BuildRequest", "Parts", "Workload"]
