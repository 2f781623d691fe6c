"""Errors that mean *the user asked for something invalid*.

Anything raised as :class:`InputError` is reported by the CLI as one line (``error: ...``) with exit
code 2, and by the dashboard as a readable message; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

#: The CLI's exit status for bad input (:class:`InputError`).
EXIT_STATUS = 2


class InputError(ValueError):
    """Bad user input (config, file, identifier, rating...). The message says what and how to fix it."""
