"""The project's own error types.

Every problem caused by input (a file, a flag, a stored run) is raised as an
:class:`AekitError` whose message names the thing at fault and what was expected.
The CLI turns these into a one-line message and exit code 2; anything else is a bug.
"""

from __future__ import annotations


class AekitError(Exception):
    """Base class: bad input, reported in one line.

    Example:
        >>> import aekit
        >>> try:
        ...     aekit.build_model("no-such-model")
        ... except aekit.AekitError as e:  # catches every aekit error
        ...     print(type(e).__name__)
        ConfigError
    """


class DataError(AekitError):
    """A data file, folder or dataset name that cannot be read as asked.

    Example:
        >>> import aekit
        >>> try:
        ...     aekit.load_dataset("no-such-data")
        ... except aekit.DataError as e:
        ...     print(str(e).split(" (")[0])  # then the names it knows
        unknown dataset 'no-such-data'
    """


class ConfigError(AekitError):
    """A configuration value, preset or model name that is not valid.

    Example:
        >>> import aekit
        >>> try:
        ...     aekit.train("mnist-5k", epochs=0)
        ... except aekit.ConfigError as e:
        ...     print(e)
        train config: epochs must be at least 1
    """


class CheckpointError(AekitError):
    """A run directory or checkpoint that is missing, corrupt or unsafe.

    Example:
        >>> import aekit
        >>> try:
        ...     aekit.load("not-a-run")
        ... except aekit.CheckpointError as e:
        ...     print(e)
        not-a-run: not a run directory
    """


class DownloadError(DataError):
    """A download that failed: offline, refused, or a checksum mismatch."""
