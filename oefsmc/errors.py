"""User-facing errors: one line, names the fix; the CLI prints them without a traceback."""


class UserError(Exception):
    """Bad input or a missing resource.  ``str(err)`` is a one-line message that names the fix."""


class InputError(UserError):
    """Bad input that no cell can run with, e.g. a corrupt data file or a teacher that does not fit its
    architecture: a sweep stops with it before any work, where a plain :class:`UserError` from resolving
    a cell (e.g. a missing dataset in the ``paper`` profile) only skips the cells it affects."""
