"""Fetch dataset files from their mirrors into a cache, SHA-256 checked, resumable and atomic.

A file is streamed to ``NAME.part`` (hashed as it is written), resumed with an HTTP Range
request when a ``.part`` is already there, verified, and only then renamed to ``NAME``: the
cache never holds a half or unverified file under its real name.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from aekit.errors import DownloadError
from aekit.progress import is_live, status

_CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch: its name in the cache, its SHA-256, and mirrors tried in order."""

    filename: str
    sha256: str
    urls: tuple[str, ...]


def cache_dir() -> Path:
    """``$AEKIT_CACHE``, else ``$XDG_CACHE_HOME/aekit``, else ``~/.cache/aekit``."""
    if os.environ.get("AEKIT_CACHE"):
        return Path(os.environ["AEKIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aekit"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(
    file: RemoteFile, dest_dir: Path | str | None = None, *, progress: bool = True, timeout: float = 30.0
) -> Path:
    """Return the path of ``file`` in ``dest_dir``, downloading it first if it is not there.

    Raises:
        DownloadError: every mirror failed (offline, refused, or a checksum mismatch); the
            message names the file, each URL and why, and where to put the file by hand.
    """
    dest_dir = Path(dest_dir) if dest_dir is not None else cache_dir()
    target = dest_dir / file.filename
    if target.is_file() and sha256_of(target) == file.sha256:
        return target
    dest_dir.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    offline = False
    for url in file.urls:
        try:
            status(f"downloading {file.filename} from {url}", enabled=progress and not is_live())
            _download(url, target, file.sha256, progress=progress, timeout=timeout)
            return target
        except urllib.error.HTTPError as e:
            errors.append(f"{url}: HTTP {e.code} {e.reason}")
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            offline = offline or isinstance(reason, OSError | socket.timeout) or isinstance(e, OSError)
            errors.append(f"{url}: {reason}")
        except _Mismatch as e:
            errors.append(f"{url}: {e}")
        except (OSError, http.client.HTTPException) as e:
            errors.append(f"{url}: {type(e).__name__} {e}")
    hint = " The machine looks offline." if offline else ""
    raise DownloadError(
        f"could not download {file.filename} ({'; '.join(errors)}).{hint} "
        f"To use it offline, place the file (SHA-256 {file.sha256}) at {target}"
    )


class _Mismatch(Exception):
    pass


def _download(url: str, target: Path, sha256: str, *, progress: bool, timeout: float) -> None:
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(
        url, headers={"User-Agent": "aekit", **({"Range": f"bytes={have}-"} if have else {})}
    )
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not have:  # 416: the .part may already be whole
            raise
        response = None
    h = hashlib.sha256()
    if response is not None:
        with response:
            resumed = have and response.status == 206
            if resumed:
                with open(part, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
            else:
                have = 0  # the server ignored Range: start again
            length = response.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            with (
                open(part, "ab" if resumed else "wb") as out,
                tqdm(
                    total=total,
                    initial=have,
                    unit="B",
                    unit_scale=True,
                    desc=target.name,
                    disable=not progress or not is_live(),  # off a terminal: the status line in fetch
                    leave=False,
                ) as bar,
            ):
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            if total is not None and part.stat().st_size < total:
                raise ConnectionError(f"connection closed after {part.stat().st_size} of {total} bytes")
    else:
        with open(part, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    if h.hexdigest() != sha256:
        part.unlink(missing_ok=True)
        raise _Mismatch(f"SHA-256 mismatch (got {h.hexdigest()[:16]}..., expected {sha256[:16]}...)")
    os.replace(part, target)
