"""Plug-in registration: the entry points import the method implementations so the core never imports up.

``oefsmc`` defines the registries (methods, datasets, architectures); ``baselines`` fills the method
registry when imported.  The core (``oefsmc.pipeline``) must not import ``baselines`` (an upward arrow);
every entry point (CLI commands, sweep workers, studies, perf, tests) calls :func:`load_plugins` first.
"""
from __future__ import annotations

import importlib

#: Packages whose import registers plug-ins (methods) in the core's registries.
PLUGIN_PACKAGES = ("baselines",)


def load_plugins() -> None:
    """Import every plug-in package once (idempotent: Python caches modules)."""
    for name in PLUGIN_PACKAGES:
        importlib.import_module(name)
