"""Load and validate a document-QA task: a CSV beside the images it names.

Columns: ``image_path, question, answer, doc_class, question_type, answer_bbox`` (other
common spellings are accepted too: ``_COLUMN_ALIASES``). Image paths are relative to the CSV's folder
(the data folder); a path that escapes it is an error. Every problem is reported with
the file and row; with ``on_bad_row="skip"`` bad rows are dropped with a warning.

Text cells may hold tab and newline but no other control character (a NUL byte, an ANSI
escape that would reach the terminal through the logs); an answer is at most
``max_answer_chars`` long, a doc class or question type at most ``MAX_LABEL_CHARS``; a
bbox is four finite numbers within the image (with a small margin for boxes drawn a
little past the edge).
"""

from __future__ import annotations

import csv as _csv
import hashlib
import io
import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prompt_opt_api import Example, TaskError

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("image_path", "question", "answer", "doc_class", "question_type")
OPTIONAL_COLUMNS = ("answer_bbox",)

# Header spellings of hand-made sheets (``answear``, ``doc type``, ``bbox``), after normalization
# (lower case, runs of spaces/dashes -> "_").
_COLUMN_ALIASES = {
    "image": "image_path",
    "image_path": "image_path",
    "question": "question",
    "answer": "answer",
    "answear": "answer",
    "doc_class": "doc_class",
    "doc_type": "doc_class",
    "question_type": "question_type",
    "answer_bbox": "answer_bbox",
    "answear_bbox": "answer_bbox",
    "bbox": "answer_bbox",
}


# C0 and C1 control characters (Unicode category Cc) but tab and newline; a carriage return
# only as part of a CRLF line end inside a quoted cell.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")
# How far past the image's right or bottom edge a bbox may reach: annotation tools round and
# pad, but a box far outside the page is a wrong row (or the wrong image).
_BBOX_MARGIN_PX = 16
_BBOX_MARGIN_SHARE = 0.05
DEFAULT_MAX_ANSWER_CHARS = 1000
# A doc class and a question type name a pair ("Паспорт Фамилия"): a short label shown in every
# results row, progress line, report heading and figure axis. 200 characters is far more
# than any real label; a longer cell is a text pasted into the wrong column.
MAX_LABEL_CHARS = 200


class DatasetError(TaskError):
    """A task file is unusable; the message names the file and every bad row."""


@dataclass(frozen=True)
class RowProblem:
    where: str  # "path/task.csv, row 3 (line 4)"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class LoadedTask:
    """Examples that passed validation, plus what was skipped."""

    csv_path: Path
    examples: tuple[Example, ...]
    skipped: tuple[RowProblem, ...]
    selection: tuple[str, ...] = ()  # the pairs a run takes when it names none (``task.pairs``); () = all


def _normalize_header(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lstrip("\ufeff").lower())


def parse_bbox(text: str) -> tuple[float, float, float, float] | None:
    """Parse ``"[x1,y1,x2,y2]"`` (quotes, spaces, or no brackets allowed); empty -> None.

    Raises:
        ValueError: if it is not four finite numbers with x1<=x2 and y1<=y2, all >= 0.
    """
    text = (text or "").strip().strip("\"'")
    if not text:
        return None
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        values = [float(v) for v in inner.split(",")]
    except ValueError:
        raise ValueError(f"malformed bbox {text!r}: expected [x1,y1,x2,y2]") from None
    if len(values) != 4:
        raise ValueError(f"malformed bbox {text!r}: expected 4 numbers, got {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"malformed bbox {text!r}: every coordinate must be a finite number (no nan or inf)")
    x1, y1, x2, y2 = values
    if min(values) < 0 or x1 > x2 or y1 > y2:
        raise ValueError(f"malformed bbox {text!r}: need 0 <= x1 <= x2 and 0 <= y1 <= y2")
    return (x1, y1, x2, y2)


def _decode_utf8(csv_path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DatasetError(
            f"{csv_path}, line {line}: file is not UTF-8 (byte 0x{raw[err.start]:02x} at offset "
            f"{err.start}); re-save it as UTF-8"
        ) from None


def check_bbox_within(bbox: tuple[float, float, float, float], size: tuple[int, int]) -> None:
    """Raise ValueError if ``bbox`` reaches past the ``(width, height)`` image by more than a small margin."""
    width, height = size
    x1, y1, x2, y2 = bbox
    limit_x = width + max(_BBOX_MARGIN_PX, _BBOX_MARGIN_SHARE * width)
    limit_y = height + max(_BBOX_MARGIN_PX, _BBOX_MARGIN_SHARE * height)
    if x2 > limit_x or y2 > limit_y:
        shown = bbox_to_json(bbox)
        raise ValueError(f"bbox {shown} lies outside the {width}x{height} image (x2 <= {limit_x:g} and "
                         f"y2 <= {limit_y:g} allowed)")


def _control_character(name: str, text: str) -> str | None:
    """A message naming the first control character in ``text`` (other than tab and newline), or None."""
    found = _CONTROL.search(text)
    if found is None:
        return None
    # the code point, never the character: an escape sequence must not reach the terminal
    return (f"{name} contains a control character U+{ord(found.group(0)[0]):04X} at position {found.start() + 1}: "
            "only tab and newline are allowed in text")


class _ImageChecker:
    """Validates each image once (a passport image is shared by many rows)."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[str, tuple[int, int]] | Exception] = {}

    def sha256_and_size(self, path: Path) -> tuple[str, tuple[int, int]]:
        """The image's sha256 and its ``(width, height)``; raises what the check found wrong."""
        if path not in self._seen:
            try:
                self._seen[path] = self._check(path)
            except Exception as err:  # noqa: BLE001 - reported per row below
                self._seen[path] = err
        result = self._seen[path]
        if isinstance(result, Exception):
            raise result
        return result

    @staticmethod
    def _check(path: Path) -> tuple[str, tuple[int, int]]:
        from PIL import Image  # lazy

        if not path.is_file():
            raise FileNotFoundError(f"image file not found: {path}")
        data = path.read_bytes()
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.load()  # decodes every pixel: catches truncated files, not just headers
                size = img.size
        except Exception as err:  # noqa: BLE001 - Pillow raises many types
            raise ValueError(f"image unreadable or corrupt: {path} ({type(err).__name__}: {err})") from None
        return hashlib.sha256(data).hexdigest(), size


def load_task(csv: str | Path, on_bad_row: str = "error", data_root: str | Path | None = None,
              max_answer_chars: int = DEFAULT_MAX_ANSWER_CHARS, pairs: Sequence[str] | None = None) -> LoadedTask:
    """Read and validate a task CSV.

    Args:
        csv: The CSV file (``task.csv=PATH`` on the command line).
        on_bad_row: ``"error"`` (raise listing every bad row) or ``"skip"`` (warn and drop).
        data_root: Folder images must lie in; defaults to the CSV's folder.
        max_answer_chars: Longest answer accepted (``task.max_answer_chars``); a longer one
            is a bad row.
        pairs: The task's own selection of pairs (``task.pairs``, as "<doc_class> <question_type>"),
            run when the command line names none (``pairs=``); empty or None: every pair.

    Returns:
        The validated examples, in file order.

    Raises:
        DatasetError: on a missing file, a non-UTF-8 file, a missing column, bad rows
            (with ``on_bad_row="error"``) or when no valid example remains.
    """
    _check_options(on_bad_row, max_answer_chars)
    csv_path = Path(csv).expanduser().resolve()
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: task CSV not found")
    root = Path(data_root).expanduser().resolve() if data_root else csv_path.parent
    reader = _csv.reader(io.StringIO(_decode_utf8(csv_path, csv_path.read_bytes()), newline=""))
    header, index = _read_header(reader, csv_path)
    examples, problems = _read_rows(reader, csv_path, _RowContext(index, len(header), root, max_answer_chars))
    _handle_problems(csv_path, problems, on_bad_row, kept=len(examples))
    if not examples:
        raise DatasetError(f"{csv_path}: no usable rows (the task is empty)")
    return LoadedTask(csv_path=csv_path, examples=tuple(examples), skipped=tuple(problems),
                      selection=_checked_selection(csv_path, examples, pairs))


def _check_options(on_bad_row: str, max_answer_chars: int) -> None:
    if on_bad_row not in ("error", "skip"):
        raise ValueError(f"on_bad_row must be 'error' or 'skip', not {on_bad_row!r}")
    if isinstance(max_answer_chars, bool) or not isinstance(max_answer_chars, int) or max_answer_chars < 1:
        raise ValueError(f"max_answer_chars must be a whole number >= 1, not {max_answer_chars!r}")


def _read_header(reader, csv_path: Path) -> tuple[list[str], dict[str, int]]:
    """The header row and each known column's position (a DatasetError for a missing or broken header)."""
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError(f"{csv_path}: file is empty (no header, no rows)") from None
    except _csv.Error as err:
        raise DatasetError(f"{csv_path}, line 1: malformed CSV header ({err})") from None
    columns = [_COLUMN_ALIASES.get(_normalize_header(h), _normalize_header(h)) for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DatasetError(
            f"{csv_path}, line 1 (header): missing required column(s) {', '.join(missing)}; "
            f"found {header}. Expected {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}"
        )
    return header, {name: columns.index(name) for name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if name in columns}


@dataclass(frozen=True)
class _RowContext:
    """What parsing a row needs besides its cells."""

    index: dict[str, int]
    width: int
    root: Path
    max_answer_chars: int


def _read_rows(reader, csv_path: Path, context: _RowContext) -> tuple[list[Example], list[RowProblem]]:
    """Every data row parsed: the examples and, for each bad row, where it is and what is wrong."""
    images = _ImageChecker()
    examples: list[Example] = []
    problems: list[RowProblem] = []
    first_seen: dict[tuple[str, ...], int] = {}
    row_number = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except _csv.Error as err:
            row_number += 1
            problems.append(RowProblem(f"{csv_path}, row {row_number} (line {reader.line_num})", f"malformed CSV: {err}"))
            break  # the csv module cannot resynchronize after a broken quote
        row_number += 1
        where = f"{csv_path}, row {row_number} (line {reader.line_num})"
        if not any(c.strip() for c in cells):
            continue  # blank line
        try:
            examples.append(_parse_row(cells, context.index, context.width, context.root, images, where, first_seen,
                                       row_number, context.max_answer_chars))
        except (ValueError, FileNotFoundError) as err:
            problems.append(RowProblem(where, str(err)))
    return examples, problems


def _handle_problems(csv_path: Path, problems: Sequence[RowProblem], on_bad_row: str, kept: int) -> None:
    """Raise listing the bad rows (``on_bad_row="error"``), or warn that they are skipped."""
    if problems and on_bad_row == "error":
        shown = "\n  ".join(str(p) for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise DatasetError(
            f"{csv_path}: {len(problems)} bad row(s); fix them or pass task.on_bad_row=skip\n  {shown}{more}"
        )
    for problem in problems:
        log.warning("skipping %s", problem)
    if problems:
        log.warning("%s: skipped %d bad row(s), kept %d", csv_path, len(problems), kept)


def _checked_selection(csv_path: Path, examples: Sequence[Example], pairs: Sequence[str] | None) -> tuple[str, ...]:
    """``task.pairs`` as a tuple, every name a pair of the CSV (a DatasetError names the first that is not)."""
    selection = tuple(str(p) for p in (pairs or ()))
    known = {f"{e.doc_class} {e.question_type}" for e in examples}
    unknown = [p for p in selection if p not in known]
    if unknown:
        raise DatasetError(f"task.pairs: {unknown[0]!r} is not a pair of {csv_path} (this task config runs a "
                           f"selection of its pairs: task.pairs=[] runs every pair; for your own CSV use "
                           f"task=csv task.csv=PATH)")
    return selection


def _parse_row(cells, index, n_columns, root, images, where, first_seen, row_number, max_answer_chars) -> Example:
    if len(cells) != n_columns:
        raise ValueError(f"malformed CSV: {len(cells)} field(s), header has {n_columns}")
    value = {name: cells[i].strip() for name, i in index.items()}
    # first, so that no later message echoes a control character
    controls = [m for m in (_control_character(name, value[name]) for name in value) if m]
    if controls:
        raise ValueError("; ".join(controls))
    for name in REQUIRED_COLUMNS:
        if not value[name]:
            raise ValueError(f"empty {name}")
    for name in ("doc_class", "question_type"):
        if len(value[name]) > MAX_LABEL_CHARS:
            raise ValueError(f"{name} is {len(value[name])} characters long, over the limit of {MAX_LABEL_CHARS} "
                             "for a label (a pair's name)")
    if len(value["answer"]) > max_answer_chars:
        raise ValueError(f"answer is {len(value['answer'])} characters long, over the limit of {max_answer_chars} "
                         "(task.max_answer_chars)")
    from tasks.cer_metric import CerMetric

    if not CerMetric().normalize(value["answer"]):
        raise ValueError(f"answer {value['answer']!r} is empty once quotes/punctuation are stripped")
    bbox = parse_bbox(value.get("answer_bbox", ""))

    image = Path(value["image_path"]).expanduser()
    resolved = (image if image.is_absolute() else root / image).resolve()
    if not resolved.is_relative_to(root):
        raise ValueError(f"image path {value['image_path']!r} escapes the data folder {root}")
    image_sha, size = images.sha256_and_size(resolved)
    if bbox is not None:
        check_bbox_within(bbox, size)

    key = tuple(value[c] for c in ("image_path", "doc_class", "question_type", "question"))
    if key in first_seen:
        raise ValueError(f"duplicate of row {first_seen[key]} (same image, doc class, question type and question)")
    first_seen[key] = row_number
    return Example(
        image=resolved,
        question=value["question"],
        answer=value["answer"],
        doc_class=value["doc_class"],
        question_type=value["question_type"],
        bbox=bbox,
        image_sha256=image_sha,
        source_row=where,
    )


def bbox_to_json(bbox: tuple[float, ...] | None) -> str:
    return "" if bbox is None else json.dumps([int(v) if float(v).is_integer() else v for v in bbox])
