"""Downloading a file into a cache, checked against its SHA-256: fetch().

The bytes stream into a temporary file in the destination's folder while they are hashed;
only a file whose digest matches is renamed over the destination (os.replace, atomic). A
failed, interrupted or mismatched download removes its temporary file, so the cache never
holds a partial or wrong file under the final name. A destination that already matches is
returned without touching the network. http(s):// and file:// URLs work (urllib).
Shows a tqdm bar on an interactive terminal when tqdm is installed (pip install "stn[progress]").
"""

from __future__ import annotations

import hashlib
import http.client
import os
import string
import tempfile
import urllib.error
import urllib.request

CHUNK_BYTES = 1 << 20


def sha256_of_file(path) -> str:
    """The hex SHA-256 of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checked_digest(sha256: str) -> str:
    digest = str(sha256).strip().lower()
    if len(digest) != 64 or any(c not in string.hexdigits for c in digest):
        raise ValueError(f"fetch: sha256 must be 64 hexadecimal digits, got {sha256!r}")
    return digest


def _progress_bar(total, name: str, progress: bool):
    """A tqdm bar, or None when not wanted or tqdm is not installed."""
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    # disable=None: tqdm hides itself when stderr is not a terminal (logs, CI)
    return tqdm(total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
                leave=False, disable=None)


def _download(url: str, stream, name: str, timeout: float, progress: bool) -> str:
    """Copies `url` into the open binary `stream`; returns the hex SHA-256 of what it wrote."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        bar = _progress_bar(length, name, progress)
        received = 0
        try:
            for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                digest.update(chunk)
                stream.write(chunk)
                received += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    # read(n) returns short, without an error, when the server hangs up early
    if length is not None and received != length:
        raise OSError(f"the connection closed after {received} of {length} bytes")
    return digest.hexdigest()


def fetch(url: str, destination, sha256: str, *, timeout: float = 60, progress: bool = True) -> str:
    """The path of `destination`, downloaded from `url` unless it is already there with the
    SHA-256 `sha256`. Raises ValueError when the downloaded bytes have another digest, and
    OSError (naming the URL) when the download fails; neither leaves a file behind."""
    expected = _checked_digest(sha256)
    destination = os.path.abspath(os.fspath(destination))
    name = os.path.basename(destination)
    if os.path.isfile(destination) and sha256_of_file(destination) == expected:
        return destination
    folder = os.path.dirname(destination)
    os.makedirs(folder, exist_ok=True)
    temporary = tempfile.NamedTemporaryFile(dir=folder, prefix=name + ".", suffix=".part", delete=False)
    try:
        with temporary:
            try:
                actual = _download(url, temporary, name, timeout, progress)
            except (OSError, http.client.HTTPException) as error:
                # URLError and timeouts are OSErrors; a connection dropped mid-body raises
                # http.client.IncompleteRead. HTTPError prints as "HTTP Error 404: Not Found";
                # a URLError's reason is the underlying OS error.
                reason = error if isinstance(error, urllib.error.HTTPError) else getattr(error, "reason", error)
                if isinstance(error, urllib.error.HTTPError):
                    error.close()  # it holds the response's socket open until collected
                raise OSError(f"cannot download {url} to {destination}: {reason}") from error
            temporary.flush()
            os.fsync(temporary.fileno())
        if actual != expected:
            raise ValueError(f"download of {url} does not match the checksum for {name}: "
                             f"expected SHA-256 {expected}, got {actual} "
                             f"(a changed or corrupted file, or a wrong URL); nothing was saved")
        os.chmod(temporary.name, 0o644)   # NamedTemporaryFile makes it 0600, private to its owner
        os.replace(temporary.name, destination)
    finally:
        if os.path.exists(temporary.name):
            os.remove(temporary.name)
    return destination
