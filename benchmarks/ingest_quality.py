"""Layout quality on the 45 MMLongBench-Doc PDFs (issue 2, check 2).

1. Page counts equal page_counts.json.
2. Evidence coverage: the share of MMDocIR evidence boxes (questions.jsonl
   ``mmdocir_layout_mapping``: 0-based page, box in the given page size) of which at least half
   of the area lies inside ONE of our blocks. To show the figure is not won with oversized
   blocks, it also reports the mean IoU of the best block per box and how much of the page our
   largest blocks take.

    python benchmarks/ingest_quality.py [--ocr auto|never] [--workers 2]

Writes benchmarks/results/ingest_quality.json. Data: ../shared/data/mmlongbench-doc-subset
(MMLongBench-Doc, Ma et al. 2024; MMDocIR, Dong et al. 2025; see its SOURCE.txt).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MMRAG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "mmlongbench-doc-subset"


def evidence_boxes() -> dict[tuple[str, int, tuple], set[str]]:
    """(doc, 0-based page, box scaled to 0..1 of the page) → the evidence types of its questions."""
    boxes: dict[tuple[str, int, tuple], set[str]] = collections.defaultdict(set)
    with open(DATA / "questions.jsonl", encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            for m in q.get("mmdocir_layout_mapping") or []:
                w, h = m["page_size"]
                x0, y0, x1, y1 = m["bbox"]
                rel = (round(x0 / w, 5), round(y0 / h, 5), round(x1 / w, 5), round(y1 / h, 5))
                kinds = q.get("evidence_sources") or ["unknown"]
                boxes[(q["doc_id"], int(m["page"]), rel)].update(kinds)
    return boxes


def coverage(box, blocks) -> tuple[float, float, str | None]:
    """Best share of ``box`` inside one block, the best IoU, and that block's kind."""
    from mmrag.ingest.geometry import area, intersection

    a = area(box)
    best, best_iou, kind = 0.0, 0.0, None
    for b in blocks:
        inter = intersection(box, b.bbox)
        if a > 0 and inter / a > best:
            best, kind = inter / a, b.kind
        union = a + area(b.bbox) - inter
        if union > 0:
            best_iou = max(best_iou, inter / union)
    return best, best_iou, kind


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ocr", default="auto", choices=["auto", "always", "never"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args()

    import pymupdf

    from mmrag.config import IngestConfig
    from mmrag.ingest import ingest_many

    counts = json.loads((DATA / "page_counts.json").read_text())
    files = sorted((DATA / "documents").glob("*.pdf"))
    config = IngestConfig(ocr=args.ocr, timeout_s=args.timeout)
    t0 = time.perf_counter()
    docs = {}
    errors = {}
    for res in ingest_many(files, config, workers=args.workers, progress=True):
        if res.document is None:
            errors[res.path.name] = res.error
        else:
            docs[res.path.name] = res.document
    seconds = time.perf_counter() - t0

    page_mismatch = {n: {"expected": c, "got": docs[n].page_count if n in docs else None}
                     for n, c in counts.items() if n not in docs or docs[n].page_count != c}
    rows = []
    for (doc, page0, rel), kinds in sorted(evidence_boxes().items()):
        d = docs.get(doc)
        if d is None or page0 >= d.page_count:
            rows.append({"doc": doc, "page": page0 + 1, "covered": False, "share": 0.0, "iou": 0.0,
                         "kinds": sorted(kinds), "block_kind": None})
            continue
        p = d.pages[page0]
        box = (rel[0] * p.width, rel[1] * p.height, rel[2] * p.width, rel[3] * p.height)
        share, iou, kind = coverage(box, p.blocks)
        rows.append({"doc": doc, "page": page0 + 1, "box": [round(v, 1) for v in box], "covered": share >= 0.5,
                     "share": round(share, 3), "iou": round(iou, 3), "kinds": sorted(kinds), "block_kind": kind})
    n = len(rows)
    covered = sum(r["covered"] for r in rows)
    by_kind = {}
    for k in sorted({k for r in rows for k in r["kinds"]}):
        sel = [r for r in rows if k in r["kinds"]]
        by_kind[k] = {"boxes": len(sel), "coverage": round(sum(r["covered"] for r in sel) / len(sel), 4)}
    pages = [p for d in docs.values() for p in d.pages]
    big = [b for p in pages for b in p.blocks if p.width * p.height > 0
           and (b.bbox[2] - b.bbox[0]) * (b.bbox[3] - b.bbox[1]) > 0.5 * p.width * p.height]
    blocks_total = sum(len(p.blocks) for p in pages)
    summary = {
        "documents": len(files), "ingested": len(docs), "errors": len(errors),
        "pages": len(pages), "page_count_mismatches": len(page_mismatch),
        "evidence_boxes_unique": n, "covered_half_by_one_block": covered,
        "coverage": round(covered / n, 4) if n else None,
        "mean_best_iou": round(sum(r["iou"] for r in rows) / n, 4) if n else None,
        "blocks": blocks_total, "blocks_over_half_the_page": len(big),
        "ocr_pages": sum(p.ocr for p in pages), "table_blocks": sum(b.kind == "table" for p in pages for b in p.blocks),
        "figure_blocks": sum(b.kind == "figure" for p in pages for b in p.blocks),
        "seconds": round(seconds, 1),
    }
    print(f"{'evidence type':40s} {'boxes':>6s} {'coverage':>9s}")
    for k, v in by_kind.items():
        print(f"{k:40s} {v['boxes']:6d} {v['coverage']:9.3f}")
    for k, v in summary.items():
        print(f"{k:40s} {v}")
    out = {
        "summary": summary, "by_evidence_type": by_kind,
        "settings": {"ocr": args.ocr, "workers": args.workers, "coverage_threshold": 0.5},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "pymupdf": pymupdf.__version__,
                    "load_avg_1m": os.getloadavg()[0]},
        "page_count_mismatches": page_mismatch, "errors": errors,
        "uncovered": [r for r in rows if not r["covered"]],
    }
    dest = ROOT / "benchmarks" / "results" / "ingest_quality.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=1))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
