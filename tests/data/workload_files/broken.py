"""A plugin file whose import fails."""

import surely_not_an_installed_module  # noqa: F401
