"""rewardplug-hello: the smallest useful third-party rewardplug plugin.

This module is the plugin (the entry point names it): it only holds the hooks, and imports what
they register inside them, so loading the plugin stays cheap (`rewardplug --help` loads every
plugin). The source is in :mod:`rewardplug_hello.source`; a transform (``threshold``) and a
combine rule (``softmin``) are in :mod:`rewardplug_hello.rules`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import rewardplug

if TYPE_CHECKING:
    from rewardplug.hookspecs import RegisterCombiner, RegisterSource, RegisterTransform


@rewardplug.hookimpl
def register_sources(register: RegisterSource) -> None:
    """Register the ``hello`` source."""
    from rewardplug_hello.source import HelloSource

    register("hello", HelloSource)


@rewardplug.hookimpl
def register_transforms(register: RegisterTransform) -> None:
    """Register the ``threshold`` transform (a source's ``transform: [{threshold: {at: 0.5}}]``)."""
    from rewardplug_hello.rules import Threshold, threshold

    register("threshold", threshold, Threshold)


@rewardplug.hookimpl
def register_combiners(register: RegisterCombiner) -> None:
    """Register the ``softmin`` combine rule (``combine: {softmin: {tau: 0.1}}``)."""
    from rewardplug_hello.rules import Softmin, softmin

    register("softmin", softmin, Softmin)
