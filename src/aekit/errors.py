"""The project's own error types.

Every problem caused by input (a file, a flag, a stored run) is raised as an
:class:`AekitError` whose message names the thing at fault and what was expected.
The CLI turns these into a one-line message and exit code 2; anything else is a bug.
"""

from __future__ import annotations


class AekitError(Exception):
    """Base class: bad input, reported in one line."""


class DataError(AekitError):
    """A data file, folder or dataset name that cannot be read as asked."""


class ConfigError(AekitError):
    """A configuration value, preset or model name that is not valid."""


class CheckpointError(AekitError):
    """A run directory or checkpoint that is missing, corrupt or unsafe."""


class DownloadError(DataError):
    """A download that failed: offline, refused, or a checksum mismatch."""
