"""Ingestion speed on the 45 MMLongBench-Doc PDFs (1,833 pages), all comparisons in one run.

Measures pages/s, in one process unless said otherwise:
- raw PyMuPDF ``page.get_text("dict", flags=TEXTFLAGS_DICT & ~TEXT_PRESERVE_IMAGES)``, plus the
  default-flag dict call and plain ``get_text()`` for reference;
- mmrag ``load_document`` text+layout (blocks, kinds, reading order, figures; OCR off), with
  table search off and with the default gated table search;
- pdfplumber ``extract_text`` (the peer);
- page rendering at 144 DPI: mmrag ``render_page`` (PIL image) vs raw ``get_pixmap(dpi=144)``;
- ``ingest_many`` with 1 and 2 worker processes (text+layout, OCR off; tables with --pool-tables).

Targets from issue 2: mmrag >= 0.8x the raw call, >= 10x pdfplumber, render >= 0.9x raw,
2 workers >= 1.8x one. The machine is shared and its speed drifts over minutes, so the sides
being compared are timed per document, back to back in a rotating order, and each rate is the
total over all documents and rounds: the ratios hold even when the absolute rates drift.

    python benchmarks/ingest.py [--rounds 2] [--plumber-stride 8]
    python benchmarks/ingest.py --render-only --rounds 3     # rendering alone

Writes benchmarks/results/ingest.json. Data: ../shared/data/mmlongbench-doc-subset (SOURCE.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from common import package_versions  # benchmarks/ is sys.path[0] when a script runs

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MMRAG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "mmlongbench-doc-subset"


def timed(fn) -> tuple[float, int]:
    t0 = time.perf_counter()
    pages = fn()
    return time.perf_counter() - t0, pages


def pages_of(call):
    """A per-file timing body: open the PDF with PyMuPDF and run ``call(page)`` on every page."""
    import pymupdf

    def run(f: Path) -> int:
        n = 0
        with pymupdf.open(f) as doc:
            for page in doc:
                call(page)
                n += 1
        return n
    return run


def mmrag_layout(tables: bool):
    from mmrag.config import IngestConfig
    from mmrag.ingest import load_document

    cfg = IngestConfig(ocr="never", tables=tables, timeout_s=0)
    return lambda f: load_document(f, config=cfg).page_count


def plumber(stride: int):
    import pdfplumber

    def run(f: Path) -> int:
        n = 0
        with pdfplumber.open(f) as pdf:
            for k, page in enumerate(pdf.pages):
                if k % stride == 0:
                    page.extract_text()
                    n += 1
                page.close()
        return n
    return run


def mmrag_render(counts: dict[str, int]):
    from mmrag.ingest.render import render_page

    def run(f: Path) -> int:
        for i in range(counts[f.name]):
            render_page(f, i + 1, dpi=144)
        return counts[f.name]
    return run


def paired(files: list[Path], sides: dict, rounds: int, label: str) -> dict[str, tuple[float, int]]:
    """Seconds and pages per side, every side timed on each file in turn before the next file.

    The machine is shared and its speed drifts over minutes; timing all sides on the same file
    back to back, in an order that rotates from file to file, puts the drift on every side alike,
    so the ratios hold even when the absolute rates do not.
    """
    names = list(sides)
    secs = dict.fromkeys(names, 0.0)
    pages = dict.fromkeys(names, 0)
    for r in range(rounds):
        for i, f in enumerate(files):
            k = (i + r) % len(names)
            for name in names[k:] + names[:k]:
                dt, n = timed(lambda: sides[name](f))
                secs[name] += dt
                pages[name] += n
        print(f"round {r + 1} {label}: " + ", ".join(f"{n} {pages[n] / secs[n]:.1f} p/s" for n in names), flush=True)
    return {n: (secs[n], pages[n]) for n in names}


def pool(files, workers: int, tables: bool):
    from mmrag.config import IngestConfig
    from mmrag.ingest import ingest_many

    cfg = IngestConfig(ocr="never", tables=tables, timeout_s=600)

    def run():
        return sum(r.document.page_count for r in ingest_many(files, cfg, workers=workers, progress=False)
                   if r.document is not None)
    return run


TARGETS = {"mmrag_layout_no_tables / raw_dict": 0.8, "mmrag_layout_tables / raw_dict": None,
           "mmrag_layout_no_tables / pdfplumber": 10, "mmrag_layout_tables / pdfplumber": 10,
           "mmrag_render / raw_render": 0.9, "2 workers / 1 worker": 1.8}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--plumber-stride", type=int, default=8, help="time pdfplumber on every Nth page only")
    ap.add_argument("--pool-tables", action="store_true", help="search tables in the worker-pool runs too")
    ap.add_argument("--render-only", action="store_true", help="time only rendering; writes ingest_render.json")
    args = ap.parse_args()

    import pymupdf

    files = sorted((DATA / "documents").glob("*.pdf"))
    counts = json.loads((DATA / "page_counts.json").read_text())
    flags = pymupdf.TEXTFLAGS_DICT & ~pymupdf.TEXT_PRESERVE_IMAGES
    render = {"raw_render_144": pages_of(lambda page: page.get_pixmap(dpi=144)),
              "mmrag_render_144": mmrag_render(counts)}
    if args.render_only:
        return render_only(files, render, args.rounds)
    layout = {
        "raw_dict": pages_of(lambda page: page.get_text("dict", flags=flags)),
        "mmrag_layout_no_tables": mmrag_layout(tables=False),
        "mmrag_layout_tables": mmrag_layout(tables=True),
        "pdfplumber_extract_text": plumber(args.plumber_stride),
    }
    totals = paired(files, layout, args.rounds, "text")
    totals |= paired(files, render, args.rounds, "render")
    totals |= paired(files, {"raw_dict_default_flags": pages_of(lambda page: page.get_text("dict")),
                             "raw_get_text_plain": pages_of(lambda page: page.get_text())}, 1, "reference")
    # the pool runs take the whole machine: alternate them, 1-2-2-1, and add up
    for name, workers in [("ingest_many_1_worker", 1), ("ingest_many_2_workers", 2),
                          ("ingest_many_2_workers", 2), ("ingest_many_1_worker", 1)]:
        dt, n = timed(pool(files, workers, args.pool_tables))
        s0, n0 = totals.get(name, (0.0, 0))
        totals[name] = (s0 + dt, n0 + n)
        print(f"{name:34s} {n / dt:8.1f} pages/s", flush=True)
    rate = {k: n / s for k, (s, n) in totals.items()}
    ratios = {
        "mmrag_layout_no_tables / raw_dict": rate["mmrag_layout_no_tables"] / rate["raw_dict"],
        "mmrag_layout_tables / raw_dict": rate["mmrag_layout_tables"] / rate["raw_dict"],
        "mmrag_layout_no_tables / pdfplumber": rate["mmrag_layout_no_tables"] / rate["pdfplumber_extract_text"],
        "mmrag_layout_tables / pdfplumber": rate["mmrag_layout_tables"] / rate["pdfplumber_extract_text"],
        "mmrag_render / raw_render": rate["mmrag_render_144"] / rate["raw_render_144"],
        "2 workers / 1 worker": rate["ingest_many_2_workers"] / rate["ingest_many_1_worker"],
    }
    print(f"\n{'measure':38s} {'pages':>6s} {'pages/s':>9s}")
    for k, v in rate.items():
        print(f"{k:38s} {totals[k][1]:6d} {v:9.1f}")
    print(f"\n{'ratio':42s} {'value':>7s} {'target':>7s}")
    for k, v in ratios.items():
        print(f"{k:42s} {v:7.2f} {TARGETS[k] if TARGETS[k] is not None else '-':>7}")
    out = {
        "pages_per_s": {k: round(v, 2) for k, v in rate.items()},
        "seconds_and_pages": {k: [round(s, 2), n] for k, (s, n) in totals.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "targets": TARGETS,
        "settings": {"rounds": args.rounds, "plumber_stride": args.plumber_stride, "documents": len(files),
                     "dpi": 144, "ocr": "never", "raw_flags": flags, "pool_tables": args.pool_tables,
                     "method": "paired per document, rotating order; rates are totals over all rounds"},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_avg_1m_at_end": os.getloadavg()[0]},
        "versions": package_versions("pymupdf", "pdfplumber", "pdfminer.six", "rapidocr", "onnxruntime"),
    }
    dest = ROOT / "benchmarks" / "results" / "ingest.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=1))
    print(f"wrote {dest}")


def render_only(files: list[Path], render: dict, rounds: int) -> None:
    """Rendering alone, raw vs mmrag paired per document."""
    totals = paired(files, render, rounds, "render")
    rate = {k: n / s for k, (s, n) in totals.items()}
    ratio = rate["mmrag_render_144"] / rate["raw_render_144"]
    print(f"mmrag_render / raw_render {ratio:.3f} (target 0.9)")
    out = {"pages_per_s": {k: round(v, 2) for k, v in rate.items()}, "ratio": round(ratio, 3), "target": 0.9,
           "dpi": 144, "rounds": rounds, "method": "paired per document, rotating order",
           "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_end": os.getloadavg()[0]}}
    dest = ROOT / "benchmarks" / "results" / "ingest_render.json"
    dest.write_text(json.dumps(out, indent=1))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
