"""User-facing errors.

Every error a user can cause derives from :class:`TransferLensError`. Its message names what was wrong
and how to fix it; the CLI prints it on one line (no traceback) and exits with ``exit_code``.
"""

from __future__ import annotations


class TransferLensError(Exception):
    """Base class of errors caused by input, environment or configuration, not by a bug."""

    exit_code = 1


class UsageError(TransferLensError, ValueError):
    """The call itself is wrong: unknown URI scheme, bad option value, malformed query string."""

    exit_code = 2


class InputError(TransferLensError, ValueError):
    """Arrays or labels handed to a function are unusable (shape, NaN/Inf, tiny classes...)."""


class DataError(TransferLensError):
    """A data source cannot be read: missing Debian package, unreadable file, too few samples."""


class ModelError(TransferLensError):
    """A model cannot be loaded or tapped: unknown name, missing weights offline, unknown layer."""


class CacheError(TransferLensError):
    """A cache entry or an output directory is unusable (corrupt, unwritable)."""
