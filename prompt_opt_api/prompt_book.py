"""The prompt book: what won, per pair, in a form that leaves the framework whole.

A book is one JSON document written beside every results CSV. Per pair it holds the
winning prompt exactly as it was scored (template text and each demo: image path
relative to the task CSV, the image's sha256, question, answer), the val and test CER
with the test interval, and who wrote it. The header names the answer model (its cache
identity and the configuration that builds it), the task, and the split and metric
settings; ``content_sha256`` covers it all. ``PromptBook.prompt`` rebuilds the scored
``Prompt``: the same text and demos, so the same cache keys and the same request.

Pure data and validation: no model, no Hydra. What applying a book may build and use is
``prompt_opt_api.book_trust``; the runtime that builds requests from a book is
``models.prompt_runtime``; ``python -m optimize.apply`` scores a book on a CSV.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prompt_opt_api.book_entry import (  # re-exported: the book's parts are read from here too
    BookDemo,
    BookEntry,
    BookRetrieval,
    PromptBookError,
    check_model,
    entry_from_json,
)
from prompt_opt_api.answer_shape import AnswerShapes
from prompt_opt_api.cache import cache_key
from prompt_opt_api.data import Example, Prompt, pair_key
from prompt_opt_api.demo_retrieval import DemoRetrieval

BOOK_SCHEMA = "vlm-prompt-opt/prompt-book"
# 2 added per-document demos (``retrieval``), which a reader of 1 would drop; 3 retrieval by
# OCR text and ``distinct_answers``, which a reader of 2 would apply otherwise or ignore; 4
# ``content_sha256``, and no ``LOCATION_KEYS``; 5 an entry's demo cut (``demo_chars``), which a
# reader of 4 would drop; 6 an entry's answer shapes (``answer_shapes``) and length cut
# (``answer_max_chars``), which a reader of 5 would drop. A book is written as the lowest version
# that holds its entries' features: 6 with answer shapes or a length cut, else 5 when an entry
# cuts its demos, else 4 (so a book without them is what it always was; ``written_schema_version``);
# all are read (``prompt_opt_api.book_trust`` applies one without a matching hash only if its user
# trusts it).
UNCUT_SCHEMA_VERSION = 4  # a book none of whose entries cuts its demos
CUT_SCHEMA_VERSION = 5  # a book with an entry that cuts its demos (``BookEntry.demo_chars``)
SHAPES_SCHEMA_VERSION = 6  # a book with an entry whose replies are trimmed (``answer_shapes``, ``answer_max_chars``)
_READS = (1, 2, 3, 4, 5, 6)
BOOK_SUFFIX = ".book.json"
# Where answers, keys, weights and data come from (endpoint, key variable, weights folder,
# file and sources, data): the user's to set when a book is applied; no book holds them.
LOCATION_KEYS = frozenset({"api_base", "api_key", "api_key_env", "store_dir", "local_path", "hf_repo", "hf_filename",
                           "pypi_parts", "pypi_version", "pretrained", "csv", "data_root"})


@dataclass(frozen=True)
class PromptBook:
    """Every pair's winner for one answer model on one task.

    Attributes:
        task_id: The task identity (data, split, metric).
        task_csv: The task CSV when the book was written; demo paths are relative to its folder.
        answer_model: ``{"name", "identity", "config"}``: the answer model's display name, its
            cache identity (what keys its answers) and the configuration that builds it
            (a ``_target_`` mapping).
        split: The split settings (``--split test`` re-makes the test split with them).
        metric: The metric settings (a ``_target_`` mapping).
        entries: One per pair.
        loader: How the task CSV was loaded (a ``_target_`` mapping, less the CSV).
        path: Where the book was read from (not written).
        schema_version: The version it was read as; for a book built in memory (0 given), the
            version a writer writes for its entries (``written_schema_version``).
        content_sha256: The content hash the file records (``content_sha256``; empty before 4).
        read_sha256: The content hash of what was read; a book is as written when both match.
    """

    task_id: str
    task_csv: str
    answer_model: dict[str, Any]
    split: dict[str, Any]
    metric: dict[str, Any]
    entries: tuple[BookEntry, ...] = ()
    loader: dict[str, Any] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)
    schema_version: int = field(default=0, compare=False)
    content_sha256: str = field(default="", compare=False)  # as the file records it
    read_sha256: str = field(default="", compare=False)  # of the file's content as read

    def __post_init__(self) -> None:
        if not self.schema_version:
            object.__setattr__(self, "schema_version", written_schema_version(self.entries))

    @property
    def where(self) -> str:
        return str(self.path) if self.path else "prompt book"

    def pairs(self) -> list[tuple[str, str]]:
        return [(e.doc_class, e.question_type) for e in self.entries]

    def entry(self, doc_class: str, question_type: str) -> BookEntry:
        """The pair's entry.

        Raises:
            PromptBookError: naming the pairs the book has.
        """
        for entry in self.entries:
            if (entry.doc_class, entry.question_type) == (doc_class, question_type):
                return entry
        have = ", ".join(repr(e.key) for e in self.entries) or "none"
        raise PromptBookError(f"{self.where}: no entry for pair {pair_key(doc_class, question_type)!r}; "
                              f"the book has: {have}")

    def model_of(self, entry: BookEntry) -> dict[str, Any]:
        """The answer model an entry was scored with."""
        return entry.answer_model or self.answer_model

    def demo_root(self, override: str | Path | None = None) -> Path:
        """The folder demo image paths are relative to: ``override``, else the task CSV's folder."""
        return Path(override).expanduser() if override else Path(self.task_csv).expanduser().parent

    def prompt(self, doc_class: str, question_type: str, demo_root: str | Path | None = None) -> Prompt:
        """The pair's prompt exactly as it was scored, its demos read from ``demo_root``.

        Raises:
            PromptBookError: the pair is not in the book, or a demo image is missing or its
                bytes no longer match the recorded sha256.
        """
        entry = self.entry(doc_class, question_type)
        root = self.demo_root(demo_root)
        demos = tuple(self._demo_example(entry, f"demo {i + 1}", demo, root) for i, demo in enumerate(entry.demos))
        retrieval = None
        if entry.retrieval is not None:
            pool = tuple(self._demo_example(entry, f"retrieval pool example {i + 1}", demo, root)
                         for i, demo in enumerate(entry.retrieval.pool))
            retrieval = DemoRetrieval(k=entry.retrieval.k, pool=pool, signature=entry.retrieval.signature,
                                      distinct_answers=entry.retrieval.distinct_answers)
        # the book keeps the origin label
        shapes = entry_trim(entry)
        return Prompt(text=entry.template, demos=demos, retrieval=retrieval, demo_chars=entry.demo_chars,
                      answer_shapes=shapes)

    def _demo_example(self, entry: BookEntry, what: str, demo: BookDemo, root: Path) -> Example:
        """The demo's image, read only inside ``root`` (what the user's file holds is never printed)."""
        where = f"{self.where}, pair {entry.key!r}, {what} ({demo.image})"
        root = root.resolve()
        image = (root / demo.image).resolve()
        if not image.is_relative_to(root):
            raise PromptBookError(f"{where}: the image path leads outside the demo folder {root}: refused "
                                  "(a book's demo images lie in its task's data folder)")
        if not image.is_file():
            raise PromptBookError(f"{where}: image not found at {image}; pass the task's data folder "
                                  "(--demo-root) if the book moved away from it")
        if file_sha256(image) != demo.image_sha256:
            raise PromptBookError(f"{where}: the image at {image} changed since the prompt was scored "
                                  "(its sha256 is not the one the book records)")
        return Example(image=image, question=demo.question, answer=demo.answer, doc_class=entry.doc_class,
                       question_type=entry.question_type, bbox=None, image_sha256=demo.image_sha256,
                       source_row=where)

    def to_json(self) -> dict[str, Any]:
        """The book as written: without ``LOCATION_KEYS``, with its ``content_sha256``."""
        data = _no_nan({
            "schema": BOOK_SCHEMA, "schema_version": written_schema_version(self.entries),
            "task_id": self.task_id,
            "task_csv": self.task_csv, "answer_model": without_locations(self.answer_model), "split": self.split,
            "metric": self.metric, "loader": without_locations(self.loader),
            "pairs": [entry_json(e) for e in self.entries],
        })
        return {**data, "content_sha256": content_sha256(data)}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False, indent=2, sort_keys=True, allow_nan=False) + "\n"


def written_schema_version(entries: tuple[BookEntry, ...]) -> int:
    """The version a book of ``entries`` is written as: 6 when an entry has answer shapes or a length
    cut, else 5 when an entry cuts its demos, else 4."""
    if any(e.answer_shapes is not None or e.answer_max_chars is not None for e in entries):
        return SHAPES_SCHEMA_VERSION
    return CUT_SCHEMA_VERSION if any(e.demo_chars is not None for e in entries) else UNCUT_SCHEMA_VERSION


def entry_trim(entry: BookEntry) -> AnswerShapes | None:
    """The trim an entry's replies get (its shapes and its length cut), or None without either."""
    if entry.answer_shapes is None and entry.answer_max_chars is None:
        return None
    return AnswerShapes(entry.answer_shapes or (), entry.answer_max_chars)


def content_sha256(data: dict[str, Any]) -> str:
    """sha256 of a book's JSON content (sorted keys), its own ``content_sha256`` left out."""
    return cache_key({k: v for k, v in data.items() if k != "content_sha256"})


def without_locations(node: Any) -> Any:
    """``node`` less every ``LOCATION_KEYS`` setting, at any depth."""
    if isinstance(node, dict):
        return {k: without_locations(v) for k, v in node.items() if k not in LOCATION_KEYS}
    if isinstance(node, (list, tuple)):
        return [without_locations(v) for v in node]
    return node


def entry_json(entry: BookEntry) -> dict[str, Any]:
    """An entry as it is written in a book (NaN as null)."""
    data = asdict(entry)
    data["demos"] = [asdict(d) for d in entry.demos]
    data["test_ci"] = list(entry.test_ci)
    if entry.answer_model is None:
        del data["answer_model"]
    else:
        data["answer_model"] = without_locations(data["answer_model"])
    if entry.demo_chars is None:  # written only when set: a book without a cut is a version 4 book
        del data["demo_chars"]
    if entry.answer_shapes is None:  # written only when set, as the cut
        del data["answer_shapes"]
    else:
        data["answer_shapes"] = list(entry.answer_shapes)
    if entry.answer_max_chars is None:  # written only when set, as the shapes
        del data["answer_max_chars"]
    if entry.retrieval is None:
        del data["retrieval"]
    else:
        data["retrieval"]["pool"] = [asdict(d) for d in entry.retrieval.pool]
    return _no_nan(data)


def _no_nan(value: Any) -> Any:
    """NaN (not JSON) as null, at any depth."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    return value


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def load_book(path: str | Path) -> PromptBook:
    """Read and validate a prompt book.

    Raises:
        PromptBookError: unreadable file, another schema or schema version, a malformed entry
            (each message names the file and the entry).
    """
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise PromptBookError(f"{path}: cannot read the prompt book ({err.strerror or err})") from None
    except ValueError as err:
        raise PromptBookError(f"{path}: not a JSON prompt book ({err})") from None
    return book_from_json(data, path)


def book_from_json(data: Any, path: Path | None = None) -> PromptBook:
    """A ``PromptBook`` from its JSON form, validated (see ``load_book``)."""
    where = str(path) if path else "prompt book"
    if not isinstance(data, dict) or data.get("schema") != BOOK_SCHEMA:
        raise PromptBookError(f"{where}: not a prompt book (expected \"schema\": {BOOK_SCHEMA!r})")
    version = data.get("schema_version")
    if version not in _READS:
        raise PromptBookError(f"{where}: schema_version {version!r} is not supported (this version reads "
                              f"{', '.join(map(str, _READS))}); rebuild the book with `python -m optimize.collect`")
    check_model(data.get("answer_model"), where)
    pairs = data.get("pairs")
    if not isinstance(pairs, list):
        raise PromptBookError(f"{where}: \"pairs\" must be a list of entries")
    for key in ("split", "metric", "loader"):
        if not isinstance(data.get(key) or {}, dict):
            raise PromptBookError(f"{where}: \"{key}\" must be an object of settings")
    entries = tuple(entry_from_json(item, f"{where}, entry {i + 1}") for i, item in enumerate(pairs))
    for i, entry in enumerate(entries):
        if entry.demo_chars is not None and version < CUT_SCHEMA_VERSION:
            raise PromptBookError(f"{where}, entry {i + 1}: \"demo_chars\" needs schema_version "
                                  f"{CUT_SCHEMA_VERSION} (the book says {version})")
        for key in ("answer_shapes", "answer_max_chars"):
            if getattr(entry, key) is not None and version < SHAPES_SCHEMA_VERSION:
                raise PromptBookError(f"{where}, entry {i + 1} ({entry.key!r}): \"{key}\" needs schema_version "
                                      f"{SHAPES_SCHEMA_VERSION} (the book says {version})")
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if entry.key in seen:
            raise PromptBookError(f"{where}, entry {i + 1}: pair {entry.key!r} appears twice")
        seen.add(entry.key)
    return PromptBook(task_id=str(data.get("task_id", "")), task_csv=str(data.get("task_csv", "")),
                      answer_model=data["answer_model"], split=dict(data.get("split") or {}),
                      metric=dict(data.get("metric") or {}), entries=entries, loader=dict(data.get("loader") or {}),
                      path=path, schema_version=version, content_sha256=str(data.get("content_sha256") or ""),
                      read_sha256=content_sha256(data))
