"""Checkpoint resolution: explicit path, env variable, cache, download; every failure explained."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
import urllib.error
from pathlib import Path

import pytest
import torch

from palindrome import checkpoint as ckpt
from palindrome import constants, load_model
from palindrome.checkpoint import (
    CheckpointDownloadError,
    CheckpointNotFoundError,
    ChecksumMismatchError,
    StateDictMismatchError,
    cached_checkpoint_path,
    resolve_checkpoint,
)


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(constants.CHECKPOINT_ENV, raising=False)


@pytest.fixture
def corrupt_copy(tmp_path, checkpoint_path) -> Path:
    data = bytearray(checkpoint_path.read_bytes())
    data[1000] ^= 0xFF
    path = tmp_path / "corrupt.pt"
    path.write_bytes(bytes(data))
    return path


class _Server:
    """A tiny HTTP server on 127.0.0.1 that serves the checkpoint (optionally cut short)."""

    def __init__(self, payload: bytes, truncate_at: int | None = None):
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload if truncate_at is None else payload[:truncate_at])
                self.wfile.flush()
                if truncate_at is not None:
                    self.connection.close()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/palindrome_classifier.pt"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _cache_files() -> list[str]:
    folder = cached_checkpoint_path().parent
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_sha256_constant_matches_the_real_file(checkpoint_path):
    assert hashlib.sha256(checkpoint_path.read_bytes()).hexdigest() == constants.CHECKPOINT_SHA256
    assert checkpoint_path.stat().st_size == constants.CHECKPOINT_SIZE


def test_explicit_path_wins_over_env(monkeypatch, checkpoint_path, tmp_path):
    monkeypatch.setenv(constants.CHECKPOINT_ENV, str(tmp_path / "nowhere.pt"))
    assert resolve_checkpoint(checkpoint_path) == checkpoint_path


def test_env_variable_is_used(monkeypatch, checkpoint_path):
    monkeypatch.setenv(constants.CHECKPOINT_ENV, str(checkpoint_path))
    assert resolve_checkpoint() == checkpoint_path
    assert _cache_files() == []  # a named copy is used in place, never copied


def test_missing_file_says_where_it_looked(monkeypatch, tmp_path):
    missing = tmp_path / "missing.pt"
    monkeypatch.setenv(constants.CHECKPOINT_ENV, str(missing))
    with pytest.raises(CheckpointNotFoundError, match=str(missing)) as info:
        resolve_checkpoint()
    assert constants.CHECKPOINT_ENV in str(info.value)


def test_cache_is_used_without_network(no_env, checkpoint_path, monkeypatch):
    cached = cached_checkpoint_path()
    cached.parent.mkdir(parents=True)
    shutil.copyfile(checkpoint_path, cached)
    monkeypatch.setattr(ckpt, "download_checkpoint", lambda *a, **k: pytest.fail("downloaded"))
    assert resolve_checkpoint() == cached


def test_corrupt_copy_is_rejected_and_cache_untouched(monkeypatch, corrupt_copy, checkpoint_path):
    cached = cached_checkpoint_path()
    cached.parent.mkdir(parents=True)
    shutil.copyfile(checkpoint_path, cached)
    before = cached.read_bytes()
    monkeypatch.setenv(constants.CHECKPOINT_ENV, str(corrupt_copy))
    with pytest.raises(ChecksumMismatchError, match=constants.CHECKPOINT_SHA256) as info:
        load_model()
    message = str(info.value)
    assert constants.CHECKPOINT_SHA256 in message
    assert hashlib.sha256(corrupt_copy.read_bytes()).hexdigest() in message
    assert cached.read_bytes() == before and _cache_files() == [constants.CHECKPOINT_FILENAME]


def test_corrupt_file_in_cache_is_never_kept(no_env, corrupt_copy, monkeypatch):
    cached = cached_checkpoint_path()
    cached.parent.mkdir(parents=True)
    shutil.copyfile(corrupt_copy, cached)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(ckpt.urllib.request, "urlopen", offline)
    with pytest.raises(CheckpointDownloadError, match=constants.CHECKPOINT_ENV):
        resolve_checkpoint()
    assert _cache_files() == []


def test_no_network_and_no_cache_names_the_variable(no_env, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(ckpt.urllib.request, "urlopen", offline)
    with pytest.raises(CheckpointDownloadError, match=constants.CHECKPOINT_ENV) as info:
        load_model()
    assert constants.CHECKPOINT_ENV in str(info.value)
    assert _cache_files() == []


def test_download_from_local_server_fills_the_cache(no_env, checkpoint_path, monkeypatch):
    with _Server(checkpoint_path.read_bytes()) as server:
        monkeypatch.setattr(constants, "CHECKPOINT_URL", server.url)
        model = load_model(device="cpu")
        assert server.hits == 1
        assert _cache_files() == [constants.CHECKPOINT_FILENAME]
        assert cached_checkpoint_path().read_bytes() == checkpoint_path.read_bytes()
        load_model(device="cpu")  # second time: from the cache
        assert server.hits == 1
    assert model.cfg.n_layers == 2


def test_interrupted_download_leaves_no_file(no_env, checkpoint_path):
    with _Server(checkpoint_path.read_bytes(), truncate_at=20_000) as server:
        with pytest.raises(CheckpointDownloadError, match="interrupted|ended after"):
            resolve_checkpoint(url=server.url)
    assert _cache_files() == []


def test_download_killed_midway_leaves_no_partial_file(no_env, checkpoint_path, monkeypatch):
    class Dying:
        headers = {"Content-Length": str(constants.CHECKPOINT_SIZE)}

        def __init__(self):
            self.calls = 0

        def read(self, n):
            self.calls += 1
            if self.calls > 1:
                raise KeyboardInterrupt("the user pressed Ctrl-C")
            return b"x" * n

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(ckpt.urllib.request, "urlopen", lambda *a, **k: Dying())
    with pytest.raises(KeyboardInterrupt, match="the user pressed Ctrl-C"):
        resolve_checkpoint()
    assert _cache_files() == []


def test_download_with_wrong_content_is_discarded(no_env, corrupt_copy):
    with _Server(corrupt_copy.read_bytes()) as server:
        with pytest.raises(ChecksumMismatchError, match="nothing was cached"):
            resolve_checkpoint(url=server.url)
    assert _cache_files() == []


def test_download_disabled_explains_options(no_env):
    with pytest.raises(CheckpointNotFoundError, match=constants.CHECKPOINT_ENV):
        resolve_checkpoint(download=False)


def _write_checked_file(monkeypatch, tmp_path, state) -> Path:
    """Save ``state`` and make the checksum accept it, to reach the state-dict checks."""
    path = tmp_path / "other.pt"
    torch.save(state, path)
    monkeypatch.setattr(constants, "CHECKPOINT_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    return path


def test_wrong_state_dict_names_keys_and_shapes(monkeypatch, tmp_path, checkpoint_path):
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    state["embed.W_E"] = torch.zeros(40, 28)
    del state["unembed.W_U"]
    state["extra.weight"] = torch.zeros(3)
    path = _write_checked_file(monkeypatch, tmp_path, state)
    with pytest.raises(StateDictMismatchError, match=r"embed.W_E: expected \(33, 28\), found \(40, 28\)") as info:
        load_model(path)
    message = str(info.value)
    assert "unembed.W_U" in message and "extra.weight" in message
    assert "embed.W_E: expected (33, 28), found (40, 28)" in message


def test_file_that_is_not_a_state_dict(monkeypatch, tmp_path):
    path = _write_checked_file(monkeypatch, tmp_path, [1, 2, 3])
    with pytest.raises(StateDictMismatchError, match="not a state dict"):
        load_model(path)


def test_write_atomically_leaves_only_the_finished_file(tmp_path, monkeypatch):
    from palindrome.checkpoint import write_atomically

    target = tmp_path / "sub" / "file.bin"
    assert write_atomically(target, b"first") == target
    write_atomically(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]
    with pytest.raises(ValueError, match="must be bytes"):
        write_atomically(target, "not bytes")  # refused before anything is written
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]

    def replace_fails(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("palindrome.checkpoint.os.replace", replace_fails)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, b"third")  # a write that fails midway keeps the old file, no temp left
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]
