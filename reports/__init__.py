"""Everything that reads run files: loaders, tables, reports. Never imports a framework.

``load(paths)`` turns run files into a pandas DataFrame, one row per case per run.
"""

from __future__ import annotations

from tribench.reports.frame import load

__all__ = ["load"]
