"""Draw docs/demo_contact_sheet.png: one document per class and difficulty, answer boxes in green.

    python scripts/make_contact_sheet.py
"""

import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.demo_data.synthetic_documents import DIFFICULTIES, font_path  # noqa: E402


def main(task_csv: Path = ROOT / "tasks/demo/task.csv", out: Path = ROOT / "docs/demo_contact_sheet.png") -> None:
    boxes = defaultdict(list)
    with task_csv.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            boxes[row["image_path"]].append(json.loads(row["answer_bbox"]))
    chosen = {}
    for path in boxes:
        kind, _, difficulty = Path(path).stem.rpartition("_")[0].rpartition("_")[0], None, Path(path).stem.rsplit("_", 1)[1]
        chosen.setdefault((kind, difficulty), path)
    kinds = sorted({k for k, _ in chosen})
    cell_w, cell_h = 330, 440
    sheet = Image.new("RGB", (cell_w * len(DIFFICULTIES), (cell_h + 30) * len(kinds)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.truetype(font_path("DejaVuSans.ttf"), 16)
    for r, kind in enumerate(kinds):
        for c, difficulty in enumerate(DIFFICULTIES):
            path = chosen.get((kind, difficulty))
            if not path:
                continue
            img = Image.open(task_csv.parent / path).convert("RGB")
            d = ImageDraw.Draw(img)
            for b in boxes[path]:
                d.rectangle(b, outline=(0, 180, 0), width=3)
            img.thumbnail((cell_w - 10, cell_h - 10))
            sheet.paste(img, (c * cell_w + 5, r * (cell_h + 30) + 30))
            draw.text((c * cell_w + 8, r * (cell_h + 30) + 6), f"{kind} / {difficulty}", fill="black", font=font)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
