"""How well Tesseract reads the demo documents, by difficulty level.

1. Field CER: crops every answer bbox (plus a small margin), runs `tesseract -l rus+eng
   --psm 6` on the crop and compares with the value rendered there (normalized CER).
2. Full-page field recall: runs Tesseract on the whole page with the answer model's page
   segmentation mode (--psm, default 11 as in conf/model/ocr_llm.yaml) and counts the
   fields whose value appears verbatim (case-folded) in the page text: what the CPU answer
   model can possibly find.

    python scripts/measure_ocr_cer.py [--csv tasks/demo/task.csv]
"""

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tasks.cer_metric import CerMetric  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--csv", default=str(ROOT / "tasks/demo/task.csv"))
    parser.add_argument("--psm", default="11")
    args = parser.parse_args()
    csv_path = Path(args.csv)
    metric = CerMetric()
    by_level = defaultdict(list)
    recall = defaultdict(list)
    pages: dict[str, str] = {}
    with csv_path.open(encoding="utf-8") as fh, tempfile.TemporaryDirectory() as tmp:
        for i, row in enumerate(csv.DictReader(fh)):
            level = Path(row["image_path"]).stem.rsplit("_", 1)[1]
            img = Image.open(csv_path.parent / row["image_path"]).convert("RGB")
            x1, y1, x2, y2 = json.loads(row["answer_bbox"])
            crop = img.crop((max(0, x1 - 6), max(0, y1 - 6), min(img.width, x2 + 6), min(img.height, y2 + 6)))
            if crop.height > crop.width * 1.5:  # the passport's vertical red number
                crop = crop.rotate(-90, expand=True)
            crop_path = Path(tmp) / f"{i}.png"
            crop.save(crop_path)
            out = subprocess.run(["tesseract", str(crop_path), "stdout", "-l", "rus+eng", "--psm", "6"],
                                 capture_output=True, text=True).stdout
            by_level[level].append(metric.cer(row["answer"], " ".join(out.split())))
            if row["image_path"] not in pages:
                page = subprocess.run(["tesseract", str(csv_path.parent / row["image_path"]), "stdout", "-l", "rus+eng",
                                       "--psm", args.psm], capture_output=True, text=True).stdout
                pages[row["image_path"]] = metric.normalize(" ".join(page.split()))
            recall[level].append(metric.normalize(row["answer"]) in pages[row["image_path"]])
    for level in ("clean", "scanned", "photographed"):
        values = by_level[level]
        print(f"{level:13s} fields={len(values):4d}  mean CER={sum(values) / len(values):.3f}  "
              f"exact={sum(v == 0 for v in values) / len(values):.2f}  "
              f"full-page field recall (psm {args.psm})={sum(recall[level]) / len(recall[level]):.2f}")


if __name__ == "__main__":
    main()
