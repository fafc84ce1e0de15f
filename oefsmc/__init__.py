"""OE-FSMC reproduction core: data, models, teachers, the shared compression core and the OE add-on.

This package is a library: importing it has no side effects beyond registering the built-in
datasets, architectures and OOD sources.  The command line lives in :mod:`benchmark`.
"""
__version__ = "0.1.0"
