"""Builds small task folders (CSV + PNG images) for tests."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from PIL import Image, ImageDraw

HEADER = ["image_path", "question", "answer", "doc_class", "question_type", "answer_bbox"]

SURNAMES = ["Иванов", "Петрова", "Сидоров", "Кузнецова", "Смирнов", "Попова", "Васильев", "Новикова",
            "Морозов", "Волкова", "Соловьёв", "Лебедева"]


def draw_image(path: Path, text: str, size: tuple[int, int] = (160, 60)) -> None:
    """A page: ``text`` in black, and in the bottom right corner a light grey mark drawn from the
    text's sha256, so that pages of different texts are different documents at thumbnail
    scale (``page-gray16/v1`` cosine below 0.99) while keeping the layout of their size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    draw.text((5, 20), text, fill="black")
    width, height = size
    cell_w, cell_h = max(1, width // 16), max(1, height // 16)
    bits = int.from_bytes(hashlib.sha256(text.encode()).digest()[:2], "big")
    for k in range(16):
        if bits >> k & 1:
            x, y = width - cell_w * (k % 8 + 1) - 1, height - cell_h * (k // 8 + 1) - 1
            draw.rectangle([x, y, x + cell_w - 1, y + cell_h - 1], fill=(225, 225, 225))
    img.save(path)


def make_task(root: Path, n_images: int = 8, with_second_pair: bool = True) -> Path:
    """``n_images`` passports with a surname question (and a number question), as a CSV."""
    rows = []
    for i in range(n_images):
        rel = f"images/{i}.png"
        draw_image(root / rel, f"doc {i}")
        rows.append([rel, "Какая фамилия?", SURNAMES[i % len(SURNAMES)], "passport", "Фамилия", "[5,20,80,35]"])
        if with_second_pair:
            rows.append([rel, "Номер паспорта?", f"45 0{i} 12345{i}", "passport", "Номер", ""])
    return write_csv(root / "task.csv", rows)


def issuer_task(root: Path, n: int = 12) -> Path:
    """Receipts of two issuers that look alike (same size, a number drawn) but read differently:
    the page text (``<image>.txt``, the scripted reader's OCR) names the issuer."""
    rows = []
    for i in range(n):
        issuer = ("SHOP ALPHA TRADING", "BETA MARKET SDN BHD")[i % 2]
        draw_image(root / f"images/{i}.png", f"{i}")
        (root / f"images/{i}.txt").write_text(f"{issuer}\nreceipt no {1000 + i}\ntotal {i}.00", encoding="utf-8")
        rows.append([f"images/{i}.png", "Who issued it?", issuer.split()[1], "receipt", "company", ""])
    return write_csv(root / "task.csv", rows)


def write_csv(path: Path, rows, header=HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path
