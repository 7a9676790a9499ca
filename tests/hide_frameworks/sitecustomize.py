"""Make the frameworks named in TRIBENCH_TEST_HIDE look uninstalled to this interpreter.

Put this folder first on PYTHONPATH (tests do, for the CLI and every worker it starts): the
import system then reports those packages as not found, exactly as on a machine without them.
"""

import os
import sys

HIDDEN = {name for name in os.environ.get("TRIBENCH_TEST_HIDE", "").split(",") if name}


class _Hiding:
    def __init__(self, finder):
        self._finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            return None
        find = getattr(self._finder, "find_spec", None)
        return find(name, path, target) if find else None

    def __getattr__(self, attribute):
        return getattr(self._finder, attribute)


if HIDDEN:
    sys.meta_path[:] = [_Hiding(finder) for finder in sys.meta_path]
