"""Atomic writes: a file holds either its old content or all of the new one, never half.

Every writer in aekit (checkpoints, metrics, figures, outputs, downloads) goes through
here: write to a temporary file in the same directory, fsync, then ``os.replace``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aekit.errors import DataError

_UMASK = os.umask(0)  # read the process's umask once (setting it is the only way to read it)
os.umask(_UMASK)


def new_output(path: str | Path, force: bool = False) -> Path:
    """``path`` as an output that may be written: refused if it exists, unless ``force``.

    Raises:
        DataError: the output exists and ``force`` is not given.
    """
    path = Path(path)
    if path.exists() and not force:
        raise DataError(f"{path}: already exists (pass --force to replace it)")
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``path`` atomically.

    For libraries that want a file name (safetensors, matplotlib, numpy). On an
    exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    if "\x00" in str(path):
        raise DataError(f"{str(path)!r}: a file name cannot hold a NUL byte")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; name a file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
