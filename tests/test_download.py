"""Downloads against a real HTTP server on 127.0.0.1: checksums, mirrors, resume, offline."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from aekit.data.download import RemoteFile, fetch
from aekit.data.idx import read_idx, write_idx
from aekit.errors import DownloadError


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (name -> bytes); honours Range unless ``server.ranges`` is False;
    ``server.cut`` (name -> n) closes the connection after n bytes of the body."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Range")))
        body = self.server.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and self.server.ranges:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = self.server.cut.get(self.path.lstrip("/"))
        self.wfile.write(body[start:cut] if cut else body[start:])


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.requests, httpd.ranges, httpd.cut = {}, [], True, {}
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def idx_bytes(tmp_path) -> bytes:
    images = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4)
    return write_idx(tmp_path / "src-idx3-ubyte.gz", images).read_bytes()


def remote(name: str, body: bytes, *urls: str) -> RemoteFile:
    return RemoteFile(name, hashlib.sha256(body).hexdigest(), urls)


def test_download_lands_verified_and_is_cached(server, idx_bytes, tmp_path):
    server.files["a.gz"] = idx_bytes
    cache = tmp_path / "cache"
    path = fetch(remote("a.gz", idx_bytes, server.url + "a.gz"), cache, progress=False)
    assert path.read_bytes() == idx_bytes and read_idx(path).shape == (5, 4, 4)
    assert sorted(p.name for p in cache.iterdir()) == ["a.gz"]  # no .part left
    server.files.clear()  # a second fetch must not ask the server
    assert fetch(remote("a.gz", idx_bytes, server.url + "a.gz"), cache, progress=False) == path
    assert len(server.requests) == 1


def test_checksum_mismatch_leaves_nothing(server, idx_bytes, tmp_path):
    server.files["a.gz"] = idx_bytes
    bad = RemoteFile("a.gz", "0" * 64, (server.url + "a.gz",))
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        fetch(bad, tmp_path / "cache", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


def test_falls_back_to_the_next_mirror(server, idx_bytes, tmp_path):
    server.files["b/a.gz"] = idx_bytes
    path = fetch(
        remote("a.gz", idx_bytes, server.url + "a/a.gz", server.url + "b/a.gz"), tmp_path, progress=False
    )
    assert path.read_bytes() == idx_bytes
    assert [p for p, _ in server.requests] == ["/a/a.gz", "/b/a.gz"]


@pytest.mark.parametrize("ranges", [True, False])
def test_resumes_a_partial_file(server, tmp_path, ranges):
    body = bytes(range(256)) * 50
    server.files["big"], server.ranges = body, ranges
    (tmp_path / "big.part").write_bytes(body[:3000])
    path = fetch(remote("big", body, server.url + "big"), tmp_path, progress=False)
    assert path.read_bytes() == body
    assert server.requests[0][1] == "bytes=3000-"


def test_interrupted_download_keeps_the_partial_and_resumes(server, tmp_path):
    body = bytes(range(256)) * 40
    server.files["big"], server.cut["big"] = body, 4000
    with pytest.raises(DownloadError, match="big"):
        fetch(remote("big", body, server.url + "big"), tmp_path, progress=False)
    assert not (tmp_path / "big").exists() and (tmp_path / "big.part").stat().st_size == 4000
    server.cut.clear()
    assert fetch(remote("big", body, server.url + "big"), tmp_path, progress=False).read_bytes() == body


def test_a_bad_download_never_replaces_a_good_file(server, idx_bytes, tmp_path):
    good = tmp_path / "a.gz"
    good.write_bytes(idx_bytes)
    other = gzip.compress(b"something else")
    server.files["a.gz"] = other
    # the cached file does not match the new digest, and the server's bytes do not either
    with pytest.raises(DownloadError):
        fetch(RemoteFile("a.gz", "1" * 64, (server.url + "a.gz",)), tmp_path, progress=False)
    assert good.read_bytes() == idx_bytes


def test_offline_says_so_and_where_to_put_the_file(tmp_path):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    f = RemoteFile("train-images-idx3-ubyte.gz", "a" * 64, (f"http://127.0.0.1:{port}/x.gz",))
    with pytest.raises(DownloadError) as info:
        fetch(f, tmp_path / "cache", progress=False, timeout=2)
    message = str(info.value)
    assert "offline" in message and str(tmp_path / "cache" / "train-images-idx3-ubyte.gz") in message


def test_named_dataset_downloads_into_the_cache(server, tmp_path, monkeypatch):
    """A dataset of the IDX family fetched from a (local) mirror, checked, then read."""
    from aekit.data import sources

    images, labels = np.random.default_rng(0).integers(0, 256, (6, 28, 28), dtype=np.uint8), np.arange(6) % 10
    files = {
        "t10k-images-idx3-ubyte.gz": write_idx(tmp_path / "i.gz", images).read_bytes(),
        "t10k-labels-idx1-ubyte.gz": write_idx(tmp_path / "l.gz", labels.astype(np.uint8)).read_bytes(),
    }
    server.files.update(files)
    family = sources.IdxFamily(
        "tiny",
        digests={k: hashlib.sha256(v).hexdigest() for k, v in files.items()},
        mirrors=(server.url,),
        classes=tuple("0123456789"),
    )
    monkeypatch.setenv("AEKIT_CACHE", str(tmp_path / "cache"))
    assert family.status().startswith("download")
    data = family.load("test")
    assert data.x.shape == (6, 1, 28, 28) and np.array_equal(data.x.numpy()[:, 0], images)
    assert Path(tmp_path / "cache" / "tiny" / "t10k-images-idx3-ubyte.gz").is_file()
