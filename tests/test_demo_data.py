"""The bundled demo set: valid, labelled where the ink is, with real checksums, reproducible."""

import csv
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scripts.demo_data import russian_fake_values as fake
from tasks.docqa_csv import load_task
from tasks.pair_splits import SplitConfig, split_pairs
from scripts.demo_data.synthetic_documents import QUESTIONS, generate

DEMO = Path(__file__).resolve().parent.parent / "tasks" / "demo"


@pytest.fixture(scope="module")
def rows():
    with (DEMO / "task.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_bundled_csv_passes_the_validator_and_has_the_promised_shape(rows):
    task = load_task(DEMO / "task.csv")
    assert len(task.examples) == len(rows) and not task.skipped
    classes = {e.doc_class for e in task.examples}
    assert len(classes) >= 5
    assert len({e.question_type for e in task.examples}) >= 15
    for doc_class in classes:
        assert len({e.image for e in task.examples if e.doc_class == doc_class}) >= 10
    pairs, too_small = split_pairs(task.examples, SplitConfig())
    assert not too_small and all(p.test for p in pairs)
    size = sum(f.stat().st_size for f in DEMO.rglob("*") if f.is_file())
    assert size < 15 * 2**20


def ink_share(gray_crop: np.ndarray) -> float:
    """Share of pixels much darker than the crop's own paper (robust to tint and lighting)."""
    return float((gray_crop < np.percentile(gray_crop, 90) - 35).mean())


def test_every_bbox_is_inside_its_image_and_contains_ink(rows):
    for row in rows:
        img = Image.open(DEMO / row["image_path"]).convert("L")
        x1, y1, x2, y2 = json.loads(row["answer_bbox"])
        assert 0 <= x1 < x2 <= img.width and 0 <= y1 < y2 <= img.height, row
        share = ink_share(np.asarray(img.crop((x1, y1, x2, y2)), dtype=np.int32))
        assert share > 0.08, (row["image_path"], row["question_type"], share)


def test_ink_check_rejects_blank_paper():
    from scripts.demo_data.synthetic_documents import background

    from PIL import ImageFilter

    paper = background((300, 80), random.Random(0), (238, 228, 220))
    assert ink_share(np.asarray(paper.convert("L"), dtype=np.int32)) < 0.08
    noisy = np.asarray(paper, dtype=float) + np.random.default_rng(0).normal(0, 16, (80, 300, 3))
    photographed = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.2))
    assert ink_share(np.asarray(photographed.convert("L"), dtype=np.int32)) < 0.08


def test_checksums_are_valid(rows):
    snils = [r["answer"] for r in rows if r["question_type"] == "Номер СНИЛС"]
    assert len(snils) >= 10
    for value in snils:
        m = re.fullmatch(r"(\d{3})-(\d{3})-(\d{3}) (\d{2})", value)
        assert m, value
        digits = [int(c) for c in "".join(m.groups()[:3])]
        assert fake.snils_control(digits) == int(m.group(4)), value
    inns = [r["answer"] for r in rows if r["question_type"] == "ИНН поставщика"]
    assert len(inns) >= 10 and all(fake.inn_valid(v) for v in inns)


def test_checksum_functions_on_known_values():
    assert fake.format_snils([1, 1, 2, 2, 3, 3, 4, 4, 5]) == "112-233-445 95"
    assert fake.inn_valid("7707083893") and not fake.inn_valid("7707083894")
    assert fake.inn_valid("500100732259") and not fake.inn_valid("500100732258")


def test_gender_agreement():
    rng = random.Random(3)
    for _ in range(200):
        p = fake.person(rng)
        female = p.sex == "ЖЕН."
        assert p.patronymic.endswith("на" if female else "ич"), p
        assert p.surname.endswith(("а", "ая")) == female, p
        assert (p.name in fake.FEMALE_NAMES) == female, p


def test_questions_are_russian_and_varied(rows):
    for qt in {r["question_type"] for r in rows}:
        assert len(QUESTIONS[qt]) >= 2
        assert all(re.search("[А-Яа-яЁё]", q) for q in QUESTIONS[qt])


def test_regeneration_is_byte_identical(tmp_path):
    generate(tmp_path, per_class=10, seed=0)
    bundled = sorted(p.relative_to(DEMO) for p in DEMO.rglob("*") if p.is_file())
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert bundled == fresh
    for rel in bundled:
        assert (DEMO / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel
