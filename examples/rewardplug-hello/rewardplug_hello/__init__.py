"""rewardplug-hello: the smallest useful third-party rewardplug plugin.

This module is the plugin (the entry point names it): it only holds the hook, and imports the
source class inside it, so loading the plugin stays cheap (`rewardplug --help` loads every
plugin). The source itself is in :mod:`rewardplug_hello.source`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import rewardplug


@rewardplug.hookimpl
def register_sources(register: Callable[[str, type[Any]], None]) -> None:
    """Register the ``hello`` source."""
    from rewardplug_hello.source import HelloSource

    register("hello", HelloSource)
