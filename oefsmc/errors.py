"""User-facing errors: one line, names the fix; the CLI prints them without a traceback."""


class UserError(Exception):
    """Bad input or a missing resource.  ``str(err)`` is a one-line message that names the fix."""
