"""Checkpoint resolution: explicit path, env variable, cache, download; every failure explained."""

from __future__ import annotations

import email.message
import hashlib
import http.server
import os
import shutil
import sys
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


# --- issue 25: mutation testing. Hand-built files and fake responses; expected paths, digests and messages by hand. --


ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2's sha256("abc")
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # sha256 of no bytes


def test_cache_dir_comes_from_the_variable_else_from_platformdirs(tmp_path, monkeypatch):
    # conftest points PALINDROME_CACHE_DIR at tmp_path/cache; "~" is expanded; unset or empty, platformdirs decides.
    assert ckpt.cache_dir() == tmp_path / "cache"
    assert cached_checkpoint_path() == tmp_path / "cache" / "palindrome_classifier.pt"
    monkeypatch.setenv("PALINDROME_CACHE_DIR", "~/palindrome-cache")
    assert ckpt.cache_dir() == Path.home() / "palindrome-cache"
    calls = []
    monkeypatch.setattr(
        ckpt.platformdirs, "user_cache_path", lambda *a, **k: calls.append((a, k)) or tmp_path / "platform"
    )
    monkeypatch.setenv("PALINDROME_CACHE_DIR", "")
    assert ckpt.cache_dir() == tmp_path / "platform"
    # appauthor=False: on Windows no author folder is put above the app's (on Linux it changes nothing).
    assert calls == [(("palindrome-book",), {"appauthor": False})]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG_CACHE_HOME is the Linux convention")
def test_cache_dir_without_the_variable_follows_xdg_on_linux(tmp_path, monkeypatch):
    monkeypatch.delenv("PALINDROME_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ckpt.cache_dir() == tmp_path / "xdg" / "palindrome-book"


def test_check_path_check_file_and_check_folder_say_what_is_there(tmp_path):
    # The three cases of check_file's message (a folder / under a file / nothing), each written out by hand.
    afile = tmp_path / "afile"
    afile.write_bytes(b"x")
    assert ckpt.check_path("dest", "~/a") == Path.home() / "a"
    assert ckpt.check_path("dest", Path("b")) == Path("b")
    for bad, shown in [(5, "5 (int)"), ("", "'' (str)"), (None, "None (NoneType)")]:
        with pytest.raises(ValueError) as info:
            ckpt.check_path("dest", bad)
        assert str(info.value) == (
            f"dest must be a path: a non-empty str or pathlib.Path (use '.' for the current folder), got {shown}"
        )
    assert ckpt.check_file("model", afile) == afile
    for path, there in [
        (tmp_path, "a folder"),
        (afile / "sub" / "x.pt", f"under {afile}, which is a file"),
        (tmp_path / "missing.pt", "nothing"),
    ]:
        with pytest.raises(ckpt.MissingFileError) as info:
            ckpt.check_file("model", path)
        assert str(info.value) == f"model {path} must be an existing file, but there is {there}; fix the path"
    assert ckpt.check_folder("out", tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    with pytest.raises(ValueError) as info:
        ckpt.check_folder("out", afile / "sub")
    assert str(info.value) == f"out {afile / 'sub'} cannot be a folder: {afile} is a file. Choose another folder"
    with pytest.raises(ValueError, match=r"^out must be a path"):
        ckpt.check_folder("out", 7)
    with pytest.raises(ValueError, match=r"^model must be a path"):
        ckpt.check_file("model", 7)


def test_file_in_the_way_is_the_nearest_existing_ancestor_if_it_is_a_file(tmp_path):
    afile = tmp_path / "afile"
    afile.write_bytes(b"x")
    assert ckpt.file_in_the_way(tmp_path) is None  # an existing folder
    assert ckpt.file_in_the_way(tmp_path / "new" / "deeper") is None  # can be made
    assert ckpt.file_in_the_way(afile) == afile
    assert ckpt.file_in_the_way(afile / "a" / "b") == afile
    with pytest.raises(ValueError, match=r"^folder must be a path"):
        ckpt.file_in_the_way(3)


def test_a_cache_folder_under_a_file_is_refused_with_the_way_out(tmp_path, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"x")
    monkeypatch.setenv("PALINDROME_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(ckpt.CheckpointError) as info:
        cached_checkpoint_path()
    assert str(info.value) == (
        f"the checkpoint cache {blocker / 'cache'} cannot be a folder: {blocker} is a file. Point "
        "PALINDROME_CACHE_DIR at a folder, or set PALINDROME_CHECKPOINT=/path/to/palindrome_classifier.pt "
        "to use a checkpoint without the cache."
    )


def test_sha256_file_reads_64_kib_chunks_and_verify_sha256_names_the_file(tmp_path, monkeypatch):
    # Known digests of b"abc" and of nothing; a 200,000-byte file is read as 65,536 x 3 + 3,392 bytes.
    abc = tmp_path / "abc.bin"
    abc.write_bytes(b"abc")
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 781 + bytes(64))
    assert ckpt.sha256_file(abc) == ABC_SHA256 and ckpt.sha256_file(empty) == EMPTY_SHA256
    sizes = []
    real_open = open

    class Recording:
        def __init__(self, fh):
            self.fh = fh

        def read(self, n=-1):
            data = self.fh.read(n)
            sizes.append((n, len(data)))
            return data

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(ckpt, "open", lambda path, mode: Recording(real_open(path, mode)), raising=False)
    assert ckpt.sha256_file(big) == hashlib.sha256(big.read_bytes()).hexdigest()
    assert sizes == [(65536, 65536)] * 3 + [(65536, 3392), (65536, 0)]
    monkeypatch.undo()
    with pytest.raises(ckpt.MissingFileError) as info:
        ckpt.sha256_file(tmp_path / "missing.bin")
    assert (
        str(info.value)
        == f"path {tmp_path / 'missing.bin'} must be an existing file, but there is nothing; fix the path"
    )
    assert ckpt.verify_sha256(str(abc), ABC_SHA256, "a", "b") == abc
    with pytest.raises(ChecksumMismatchError) as info:
        ckpt.verify_sha256(abc, "0" * 64, "the letters", "Write them again.")
    assert str(info.value) == (
        f"{abc} is not the letters: sha256 expected {'0' * 64}, found {ABC_SHA256} (3 bytes). Write them again."
    )
    with pytest.raises(ValueError) as info:
        ckpt.verify_sha256(abc, None, "a", "b")
    assert str(info.value) == "expected must be a sha256 as a string of 64 hex digits, got None"


def test_verify_checkpoint_defaults_to_the_july_2023_digest(tmp_path, checkpoint_path):
    abc = tmp_path / "abc.bin"
    abc.write_bytes(b"abc")
    assert ckpt.verify_checkpoint(checkpoint_path) == checkpoint_path
    assert ckpt.verify_checkpoint(abc, sha256=ABC_SHA256) == abc  # another digest, when given, is the one checked
    with pytest.raises(ChecksumMismatchError) as info:
        ckpt.verify_checkpoint(abc)
    assert str(info.value) == (
        f"{abc} is not the July-2023 palindrome checkpoint: sha256 expected "
        f"2e02564bcfab9028e9b86c96ab030c2235d60e7e2043cc29d69b473998038936, found {ABC_SHA256} (3 bytes). "
        f"It should be 44971 bytes. Re-download it from {constants.CHECKPOINT_URL} or point PALINDROME_CHECKPOINT "
        "at a good copy."
    )
    with pytest.raises(ValueError) as info:
        ckpt.verify_checkpoint(abc, sha256=b"ab")
    assert str(info.value) == (
        "sha256 must be None (the July-2023 checkpoint's) or a string of 64 hex digits, got b'ab'"
    )


def test_named_checkpoint_that_is_missing_says_who_named_it(tmp_path, monkeypatch):
    missing = tmp_path / "missing.pt"
    cache = tmp_path / "cache" / "palindrome_classifier.pt"
    tail = f"Fix the path, unset it to use the cache ({cache}), or download the file from {constants.CHECKPOINT_URL}."
    with pytest.raises(CheckpointNotFoundError) as info:
        resolve_checkpoint(missing)
    assert str(info.value) == f"no checkpoint file at {missing} (given by the checkpoint argument). {tail}"
    monkeypatch.setenv(constants.CHECKPOINT_ENV, str(missing))
    with pytest.raises(CheckpointNotFoundError) as info:
        resolve_checkpoint()
    assert str(info.value) == f"no checkpoint file at {missing} (given by $PALINDROME_CHECKPOINT). {tail}"
    with pytest.raises(ValueError, match=r"^the checkpoint argument must be a path: .* got 5 \(int\)$"):
        resolve_checkpoint(5)
    monkeypatch.delenv(constants.CHECKPOINT_ENV)
    with pytest.raises(CheckpointNotFoundError) as info:
        resolve_checkpoint(download=False)
    assert str(info.value) == (
        f"no checkpoint: no argument, PALINDROME_CHECKPOINT is unset and nothing is cached at {cache}. "
        "Set PALINDROME_CHECKPOINT=/path/to/palindrome_classifier.pt "
        f"or allow the download from {constants.CHECKPOINT_URL}."
    )


def test_write_atomically_makes_parents_and_names_its_temporary_file(tmp_path, monkeypatch):
    from palindrome.checkpoint import write_atomically

    target = tmp_path / "a" / "b" / "file.bin"  # two missing levels
    assert write_atomically(target, bytearray(b"one")) == target and target.read_bytes() == b"one"
    assert write_atomically(str(target), memoryview(b"two")) == target and target.read_bytes() == b"two"
    real_replace = os.replace
    temporaries = []

    def recording_replace(src, dst):
        temporaries.append(Path(src))
        real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", recording_replace)
    write_atomically(target, b"three")
    # The temporary file is a sibling named .<name>.<random>.part: the pattern remove_stale_parts deletes.
    (temporary,) = temporaries
    assert temporary.parent == target.parent
    assert temporary.name.startswith(".file.bin.") and temporary.name.endswith(".part")
    assert len(temporary.name) > len(".file.bin..part")

    def replace_then_interrupt(src, dst):
        real_replace(src, dst)
        raise KeyboardInterrupt("Ctrl-C just after the rename")

    monkeypatch.setattr(ckpt.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt, match="just after the rename"):  # not a FileNotFoundError of the cleanup
        write_atomically(target, b"four")
    assert target.read_bytes() == b"four" and sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]
    monkeypatch.undo()
    with pytest.raises(ValueError) as info:
        write_atomically(tmp_path, b"x")
    assert str(info.value) == f"path {tmp_path} is a folder; name the file to write, such as {tmp_path / 'file.bin'}"
    with pytest.raises(ValueError) as info:
        write_atomically(target, "text")
    assert str(info.value) == "data must be bytes (encode text first, e.g. text.encode()), got str"
    with pytest.raises(ValueError, match=r"^path must be a path: .* got 3 \(int\)$"):
        write_atomically(3, b"x")
    with pytest.raises(ValueError) as info:
        write_atomically(target / "under" / "x.bin", b"x")
    assert str(info.value) == (
        f"the folder of path {target / 'under'} cannot be a folder: {target} is a file. Choose another folder"
    )


def test_remove_stale_parts_deletes_only_this_files_leftovers(tmp_path, monkeypatch):
    from palindrome.checkpoint import remove_stale_parts

    names = [".file.bin.abc.part", ".file.bin.xyz.part", "file.bin", "file.bin.q.part", ".other.bin.q.part"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    assert remove_stale_parts(str(tmp_path / "file.bin")) == [
        tmp_path / ".file.bin.abc.part",
        tmp_path / ".file.bin.xyz.part",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.bin.q.part", "file.bin", "file.bin.q.part"]
    assert remove_stale_parts(tmp_path / "file.bin") == []
    assert remove_stale_parts(tmp_path / "no" / "such" / "file.bin") == []
    with pytest.raises(ValueError, match=r"^path must be a path: .* got None \(NoneType\)$"):
        remove_stale_parts(None)
    # Another process removes a leftover between the listing and the deletion: not an error.
    (tmp_path / ".file.bin.abc.part").write_bytes(b"x")
    (tmp_path / ".file.bin.xyz.part").write_bytes(b"x")
    real_glob = Path.glob

    def glob_then_other_process_deletes(self, pattern):
        found = sorted(real_glob(self, pattern))
        found[0].unlink()
        return found

    monkeypatch.setattr(Path, "glob", glob_then_other_process_deletes)
    assert [p.name for p in remove_stale_parts(tmp_path / "file.bin")] == [".file.bin.abc.part", ".file.bin.xyz.part"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.bin.q.part", "file.bin", "file.bin.q.part"]


class _Response:
    """A stand-in for urlopen's response: serves ``payload`` in the sizes asked, with a given Content-Length header
    (None: no header), and can fail on its ``fail_on``-th read."""

    def __init__(self, payload: bytes, length: str | None = "auto", fail_on: int | None = None):
        self.payload, self.position, self.sizes, self.fail_on = payload, 0, [], fail_on
        self.headers = email.message.Message()
        if length is not None:
            self.headers["Content-Length"] = str(len(payload)) if length == "auto" else length

    def read(self, n):
        self.sizes.append(n)
        if self.fail_on is not None and len(self.sizes) == self.fail_on:
            raise ConnectionResetError("connection reset by peer")
        chunk = self.payload[self.position : self.position + n]
        self.position += len(chunk)
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _fake_urlopen(monkeypatch, response: _Response) -> list:
    """Make urlopen return ``response``; the list it returns collects (url, timeout) of every call."""
    calls = []

    def urlopen(url, timeout=None):
        calls.append((url, timeout))
        return response

    monkeypatch.setattr(ckpt.urllib.request, "urlopen", urlopen)
    return calls


def test_download_streams_16_kib_chunks_into_the_cache_with_a_byte_progress_bar(
    no_env, checkpoint_path, monkeypatch, capsys, tmp_path
):
    # 44,971 bytes = 16,384 x 2 + 12,203: three reads with data and one empty read; the default timeout is 30 s.
    payload = checkpoint_path.read_bytes()
    response = _Response(payload)
    calls = _fake_urlopen(monkeypatch, response)
    (tmp_path / "cache").mkdir()  # an existing cache folder is fine
    assert ckpt.download_checkpoint() == tmp_path / "cache" / "palindrome_classifier.pt"
    assert calls == [(constants.CHECKPOINT_URL, 30.0)]
    assert response.sizes == [16384] * 4
    assert cached_checkpoint_path().read_bytes() == payload and _cache_files() == ["palindrome_classifier.pt"]
    bar = capsys.readouterr().err
    # desc, total (100%), unit "B" scaled by 1000: "45.0k/45.0k" bytes, rates in "?B/s" then "...B/s".
    assert "palindrome_classifier.pt: 100%" in bar and "| 45.0k/45.0k [" in bar and "?B/s]" in bar
    dest = tmp_path / "x" / "y" / "other.pt"  # another destination, two missing levels, another URL and timeout
    calls = _fake_urlopen(monkeypatch, _Response(payload, length=None))  # no Content-Length: no total to check
    assert ckpt.download_checkpoint(url="http://127.0.0.1:9/c.pt", dest=str(dest), timeout=2.5) == dest
    assert calls == [("http://127.0.0.1:9/c.pt", 2.5)] and dest.read_bytes() == payload
    assert sorted(p.name for p in dest.parent.iterdir()) == ["other.pt"]
    _fake_urlopen(monkeypatch, _Response(payload, length="unknown"))  # a Content-Length that is not a number
    assert ckpt.download_checkpoint(dest=dest) == dest and dest.read_bytes() == payload


def test_download_writes_a_part_file_beside_the_destination(no_env, checkpoint_path, monkeypatch, tmp_path):
    seen = []

    class Watching(_Response):
        def read(self, n):
            seen.append(sorted(p.name for p in tmp_path.joinpath("cache").iterdir()))
            return super().read(n)

    _fake_urlopen(monkeypatch, Watching(checkpoint_path.read_bytes()))
    ckpt.download_checkpoint()
    (part,) = seen[0]  # while downloading: palindrome_classifier.pt.<random>.part, in the cache folder itself
    assert part.startswith("palindrome_classifier.pt.") and part.endswith(".part")
    assert len(part) > len("palindrome_classifier.pt..part")
    assert _cache_files() == ["palindrome_classifier.pt"]


def test_failed_downloads_say_how_far_they_got(no_env, checkpoint_path, corrupt_copy, monkeypatch, tmp_path):
    # Each failure's message written out: bytes received (16,384 x 2 before a reset), the digest found, the URL.
    payload = checkpoint_path.read_bytes()
    url = "http://127.0.0.1:9/c.pt"
    _fake_urlopen(monkeypatch, _Response(payload, fail_on=3))
    with pytest.raises(CheckpointDownloadError) as info:
        ckpt.download_checkpoint(url=url)
    assert str(info.value) == (
        f"download from {url} was interrupted after 32768 bytes (connection reset by peer); "
        "nothing was cached. Try again, or set PALINDROME_CHECKPOINT."
    )
    _fake_urlopen(monkeypatch, _Response(payload, length="50000"))
    with pytest.raises(CheckpointDownloadError) as info:
        ckpt.download_checkpoint(url=url)
    assert str(info.value) == (
        f"download from {url} ended after 44971 of 50000 bytes; nothing was cached. "
        "Try again, or set PALINDROME_CHECKPOINT."
    )
    _fake_urlopen(monkeypatch, _Response(corrupt_copy.read_bytes()))
    with pytest.raises(ChecksumMismatchError) as info:
        ckpt.download_checkpoint(url=url)
    found = hashlib.sha256(corrupt_copy.read_bytes()).hexdigest()
    assert str(info.value) == (
        f"the file downloaded from {url} has sha256 {found}, expected "
        "2e02564bcfab9028e9b86c96ab030c2235d60e7e2043cc29d69b473998038936; it was discarded and nothing was cached."
    )

    def offline(url, timeout=None):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(ckpt.urllib.request, "urlopen", offline)
    dest = tmp_path / "cache" / "palindrome_classifier.pt"
    with pytest.raises(CheckpointDownloadError) as info:
        ckpt.download_checkpoint(url=url)
    assert str(info.value) == (
        f"could not download the checkpoint from {url} (<urlopen error no network>) and no verified copy is cached "
        f"at {dest}. Without network access, download the file elsewhere and set "
        "PALINDROME_CHECKPOINT=/path/to/palindrome_classifier.pt."
    )
    assert _cache_files() == []


def test_a_download_interrupted_after_the_rename_keeps_the_verified_file(no_env, checkpoint_path, monkeypatch):
    _fake_urlopen(monkeypatch, _Response(checkpoint_path.read_bytes()))
    real_replace = os.replace

    def replace_then_interrupt(src, dst):
        real_replace(src, dst)
        raise KeyboardInterrupt("Ctrl-C just after the rename")

    monkeypatch.setattr(ckpt.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt, match="just after the rename"):  # not a FileNotFoundError of the cleanup
        ckpt.download_checkpoint()
    assert _cache_files() == ["palindrome_classifier.pt"]


@pytest.mark.parametrize(
    "error, shown",
    [(PermissionError(13, "Permission denied"), "Permission denied"), (OSError("disk on fire"), "disk on fire")],
)
def test_a_cache_that_cannot_be_written_names_the_error_and_the_way_out(tmp_path, monkeypatch, error, shown):
    def mkstemp(**kwargs):
        raise error

    monkeypatch.setattr(ckpt.tempfile, "mkstemp", mkstemp)
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.download_checkpoint(url="http://127.0.0.1:9/none")
    assert str(info.value) == (
        f"cannot write the checkpoint into {tmp_path / 'cache'} ({shown}). Point PALINDROME_CACHE_DIR at a writable "
        "folder, or download the file yourself and set PALINDROME_CHECKPOINT=/path/to/palindrome_classifier.pt."
    )


def test_download_arguments_are_checked_before_anything_is_fetched(monkeypatch):
    monkeypatch.setattr(ckpt.urllib.request, "urlopen", lambda *a, **k: pytest.fail("fetched"))
    with pytest.raises(ValueError) as info:
        ckpt.download_checkpoint(url=5)
    assert str(info.value) == "url must be None (the public checkpoint URL) or a URL string, got 5"
    with pytest.raises(ValueError) as info:
        ckpt.download_checkpoint(timeout=0)
    assert str(info.value) == "timeout must be a positive number (seconds), got 0"
    with pytest.raises(ValueError, match=r"^dest must be a path: .* got 4 \(int\)$"):
        ckpt.download_checkpoint(dest=4)
    assert _cache_files() == []
