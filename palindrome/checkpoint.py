"""Find, verify and (if needed) download the July-2023 checkpoint.

Resolution order: an explicit path, the ``PALINDROME_CHECKPOINT`` environment
variable, the per-user cache, then a download from the public URL into the cache.
Every file is checked against the known sha256 before anything loads it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional, Union

import platformdirs
from tqdm.auto import tqdm

from palindrome import constants
from palindrome.tokens import check_positive

PathLike = Union[str, os.PathLike]


class MissingFileError(ValueError, FileNotFoundError):
    """A path that must name an existing regular file names nothing, a folder, or a path under a file."""


class CheckpointError(Exception):
    """Base class for every problem with getting the checkpoint."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint path that was named does not exist."""


class ChecksumMismatchError(CheckpointError, ValueError):
    """A file's sha256 is not the checkpoint's; it is never loaded."""


class CheckpointDownloadError(CheckpointError, ConnectionError):
    """The download failed and no verified copy is available."""


class StateDictMismatchError(CheckpointError, ValueError):
    """The file is not a state dict of this model (wrong keys or shapes)."""


def cache_dir() -> Path:
    """Directory the downloaded checkpoint is cached in (``PALINDROME_CACHE_DIR`` overrides it)."""
    override = os.environ.get(constants.CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return platformdirs.user_cache_path("palindrome-book", appauthor=False)


def check_path(name: str, value: object) -> Path:
    """Return ``value`` as a Path (``~`` expanded), or raise ValueError naming ``name`` unless it is a non-empty str or
    os.PathLike."""
    if not isinstance(value, (str, os.PathLike)) or not str(os.fspath(value)):
        raise ValueError(
            f"{name} must be a path: a non-empty str or pathlib.Path (use '.' for the current folder), "
            f"got {value!r} ({type(value).__name__})"
        )
    return Path(value).expanduser()


def check_file(name: str, value: object) -> Path:
    """Return ``value`` as the Path of an existing regular file, or raise MissingFileError (a ValueError) saying what is
    there instead."""
    path = check_path(name, value)
    if not path.is_file():
        there = (
            "a folder"
            if path.is_dir()
            else (
                f"under {file_in_the_way(path.parent)}, which is a file" if file_in_the_way(path.parent) else "nothing"
            )
        )
        raise MissingFileError(f"{name} {path} must be an existing file, but there is {there}; fix the path")
    return path


def check_folder(name: str, value: object) -> Path:
    """Return ``value`` as the Path of a folder that exists or can be created, or raise ValueError if a file is in the
    way."""
    folder = check_path(name, value)
    blocker = file_in_the_way(folder)
    if blocker is not None:
        raise ValueError(f"{name} {folder} cannot be a folder: {blocker} is a file. Choose another folder")
    return folder


def file_in_the_way(folder: PathLike) -> Optional[Path]:
    """The file that stops ``folder`` from being (or becoming) a folder: itself or its nearest existing ancestor; None
    if none."""
    folder = check_path("folder", folder)
    nearest = next((p for p in [folder, *folder.parents] if p.exists()), None)
    return nearest if nearest is not None and not nearest.is_dir() else None


def cached_checkpoint_path() -> Path:
    """Where the cached checkpoint lives (it may not exist yet); CheckpointError if the cache folder cannot be one."""
    folder = cache_dir()
    blocker = file_in_the_way(folder)
    if blocker is not None:
        raise CheckpointError(
            f"the checkpoint cache {folder} cannot be a folder: {blocker} is a file. Point "
            f"{constants.CACHE_DIR_ENV} at a folder, or set {constants.CHECKPOINT_ENV}=/path/to/"
            f"{constants.CHECKPOINT_FILENAME} to use a checkpoint without the cache."
        )
    return folder / constants.CHECKPOINT_FILENAME


def sha256_file(path: PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    path = check_file("path", path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomically(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, so no reader sees half a file."""
    path = check_path("path", path)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"data must be bytes (encode text first, e.g. text.encode()), got {type(data).__name__}")
    if path.is_dir():
        raise ValueError(f"path {path} is a folder; name the file to write, such as {path / 'file.bin'}")
    check_folder("the folder of path", path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_stale_parts(path: PathLike) -> list[Path]:
    """Delete the temporary ``.<name>.*.part`` files that a killed ``write_atomically`` to ``path`` left; return
    them."""
    path = check_path("path", path)
    if not path.parent.is_dir():
        return []
    stale = sorted(path.parent.glob(f".{path.name}.*.part"))
    for part in stale:
        part.unlink(missing_ok=True)
    return stale


def verify_sha256(path: PathLike, expected: str, what: str, remedy: str) -> Path:
    """Return ``path`` if its sha256 is ``expected``, else raise ChecksumMismatchError naming ``what`` and
    ``remedy``."""
    if not isinstance(expected, str):
        raise ValueError(f"expected must be a sha256 as a string of 64 hex digits, got {expected!r}")
    found = sha256_file(path)
    if found != expected:
        raise ChecksumMismatchError(
            f"{path} is not {what}: sha256 expected {expected}, found {found} ({os.path.getsize(path)} bytes). {remedy}"
        )
    return Path(path)


def verify_checkpoint(path: PathLike, sha256: Optional[str] = None) -> Path:
    """Return ``path`` if its sha256 matches, else raise ChecksumMismatchError."""
    if sha256 is not None and not isinstance(sha256, str):
        raise ValueError(
            f"sha256 must be None (the July-2023 checkpoint's) or a string of 64 hex digits, got {sha256!r}"
        )
    return verify_sha256(
        path,
        sha256 or constants.CHECKPOINT_SHA256,
        "the July-2023 palindrome checkpoint",
        f"It should be {constants.CHECKPOINT_SIZE} bytes. Re-download it from "
        f"{constants.CHECKPOINT_URL} or point {constants.CHECKPOINT_ENV} at a good copy.",
    )


def _named_file(path: PathLike, source: str) -> Path:
    path = check_path(source, path)
    if not path.is_file():
        raise CheckpointNotFoundError(
            f"no checkpoint file at {path} (given by {source}). Fix the path, unset it to use "
            f"the cache ({cached_checkpoint_path()}), or download the file from "
            f"{constants.CHECKPOINT_URL}."
        )
    return verify_checkpoint(path)


def download_checkpoint(url: Optional[str] = None, dest: Optional[PathLike] = None, timeout: float = 30.0) -> Path:
    """Download the checkpoint atomically into ``dest`` (default: the cache), verifying sha256."""
    url = url or constants.CHECKPOINT_URL
    if not isinstance(url, str):
        raise ValueError(f"url must be None (the public checkpoint URL) or a URL string, got {url!r}")
    timeout = check_positive("timeout", timeout, " (seconds)")
    dest = check_path("dest", dest) if dest is not None else cached_checkpoint_path()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise CheckpointError(
            f"cannot write the checkpoint into {dest.parent} ({exc.strerror or exc}). Point "
            f"{constants.CACHE_DIR_ENV} at a writable folder, or download the file yourself and set "
            f"{constants.CHECKPOINT_ENV}=/path/to/{constants.CHECKPOINT_FILENAME}."
        ) from exc
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except (urllib.error.URLError, OSError) as exc:
                raise CheckpointDownloadError(
                    f"could not download the checkpoint from {url} ({exc}) and no verified copy is "
                    f"cached at {dest}. Without network access, download the file elsewhere and set "
                    f"{constants.CHECKPOINT_ENV}=/path/to/{constants.CHECKPOINT_FILENAME}."
                ) from exc
            with response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                received = 0
                with tqdm(total=total, unit="B", unit_scale=True, desc="palindrome_classifier.pt") as bar:
                    while True:
                        try:
                            chunk = response.read(1 << 14)
                        except (OSError, ValueError) as exc:  # IncompleteRead, reset, timeout
                            raise CheckpointDownloadError(
                                f"download from {url} was interrupted after {received} bytes ({exc}); "
                                f"nothing was cached. Try again, or set {constants.CHECKPOINT_ENV}."
                            ) from exc
                        if not chunk:
                            break
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                if total is not None and received != total:
                    raise CheckpointDownloadError(
                        f"download from {url} ended after {received} of {total} bytes; nothing was "
                        f"cached. Try again, or set {constants.CHECKPOINT_ENV}."
                    )
        found = digest.hexdigest()
        if found != constants.CHECKPOINT_SHA256:
            raise ChecksumMismatchError(
                f"the file downloaded from {url} has sha256 {found}, expected "
                f"{constants.CHECKPOINT_SHA256}; it was discarded and nothing was cached."
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def resolve_checkpoint(checkpoint: Optional[PathLike] = None, download: bool = True, url: Optional[str] = None) -> Path:
    """Path of a verified checkpoint: explicit path, env variable, cache, then download."""
    if checkpoint is not None:
        return _named_file(checkpoint, "the checkpoint argument")
    from_env = os.environ.get(constants.CHECKPOINT_ENV)
    if from_env:
        return _named_file(from_env, f"${constants.CHECKPOINT_ENV}")
    cached = cached_checkpoint_path()
    if cached.is_file():
        try:
            return verify_checkpoint(cached)
        except ChecksumMismatchError:
            cached.unlink()  # never keep a corrupt file in the cache; fetch a fresh copy below
    if not download:
        raise CheckpointNotFoundError(
            f"no checkpoint: no argument, {constants.CHECKPOINT_ENV} is unset and nothing is cached "
            f"at {cached}. Set {constants.CHECKPOINT_ENV}=/path/to/{constants.CHECKPOINT_FILENAME} "
            f"or allow the download from {constants.CHECKPOINT_URL}."
        )
    return download_checkpoint(url=url, dest=cached)
