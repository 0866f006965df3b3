"""``python -m aekit`` (and ``torchrun -m aekit``) run the CLI."""

from aekit.cli import entry_point

entry_point()
