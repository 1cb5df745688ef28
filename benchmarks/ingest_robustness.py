"""Robustness of ingestion on the 1,055 PDFs of ../shared/data/pdf-robustness (issue 2, check 1).

Runs ``ingest_many`` over every file of inventory.tsv with the known passwords, then the
password-protected files again without them, and checks: no crash, no hang, every file ok or a
typed ``DocumentError``; password files open with their password (and fail typed without);
page counts equal py-pdf-sample-files/files.json where it gives them.

    python benchmarks/ingest_robustness.py [--workers 2] [--ocr never] [--timeout 60]

Writes benchmarks/results/ingest_robustness.json. Source of the data: the SOURCE.txt files
under ../shared/data/pdf-robustness (py-pdf/sample-files, pdfminer.six, pdfplumber, pypdf,
pdf.js, qpdf test suites).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MMRAG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "pdf-robustness"
TYPED = {"CorruptDocument", "EncryptedDocument", "UnsupportedFormat", "EmptyDocument", "DocumentTooLarge",
         "DocumentTimeout", "DocumentError"}


def parse_password(field: str) -> str | None:
    """inventory.tsv's password column → the password to try ("(empty)" is the empty string)."""
    field = field.strip()
    if not field:
        return None
    if field.startswith("(empty)"):
        return ""
    return field.split(" (")[0].split(" / ")[0].strip()


def read_inventory() -> list[dict]:
    rows = []
    with open(DATA / "inventory.tsv", encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            cols = line.rstrip("\n").split("\t")
            rows.append(dict(zip(header, cols)))
    return rows


def expected_pages() -> dict[str, int]:
    data = json.loads((DATA / "py-pdf-sample-files" / "files.json").read_text())["data"]
    return {f"py-pdf-sample-files/{d['path']}": d["pages"] for d in data if d.get("pages")}


def run(files: list[Path], config, workers: int, passwords: dict) -> dict[str, dict]:
    from mmrag.ingest import ingest_many

    out = {}
    for res in ingest_many(files, config, workers=workers, passwords=passwords, progress=True):
        rel = str(res.path.relative_to(DATA))
        out[rel] = {
            "status": "ok" if res.ok else "error",
            "type": res.error["type"] if res.error else None,
            "message": res.error["message"] if res.error else None,
            "pages": res.document.page_count if res.document else None,
            "page_errors": sum(1 for p in res.document.pages if p.error) if res.document else 0,
            "seconds": round(res.seconds, 3),
            "skipped_duplicate": res.skipped,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ocr", default="never", choices=["auto", "always", "never"])
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()

    import pymupdf

    from mmrag.config import IngestConfig

    inv = read_inventory()
    files = [DATA / r["path"] for r in inv]
    pw_field = {r["path"]: parse_password(r["known_password"]) for r in inv}
    passwords = {str(DATA / p): pw for p, pw in pw_field.items() if pw is not None}
    config = IngestConfig(ocr=args.ocr, timeout_s=args.timeout)
    t0 = time.perf_counter()
    results = run(files, config, args.workers, passwords)
    seconds = time.perf_counter() - t0
    # the same password files without their password: must fail typed (or open: empty user password)
    pw_files = [DATA / p for p, pw in pw_field.items() if pw is not None]
    no_pw = run(pw_files, config, args.workers, {})

    # identical files are ingested once; a duplicate inherits its twin's outcome
    by_sha = collections.defaultdict(list)
    for r in inv:
        by_sha[r["sha256"]].append(r["path"])
    for paths in by_sha.values():
        first = next((p for p in paths if not results[p]["skipped_duplicate"]), None)
        for p in paths:
            if results[p]["skipped_duplicate"] and first:
                results[p].update({k: results[first][k] for k in ("status", "type", "message", "pages")})

    types = collections.Counter(r["type"] or "ok" for r in results.values())
    crashes = [p for p, r in results.items() if r["type"] == "CorruptDocument" and "crashed" in (r["message"] or "")]
    hangs = [p for p, r in results.items() if r["type"] == "DocumentTimeout"]
    untyped = [p for p, r in results.items() if r["status"] == "error" and r["type"] not in TYPED]
    pw_open = {p: results[p]["status"] == "ok" for p in pw_field if pw_field[p] is not None}
    pw_without = {p: no_pw[p]["type"] or "ok" for p in pw_open}
    exp = expected_pages()
    page_checks = {p: {"expected": n, "got": results[p]["pages"]} for p, n in exp.items() if p in results}
    mismatches = {p: c for p, c in page_checks.items() if c["expected"] != c["got"]}
    summary = {
        "files": len(files),
        "ok": types.get("ok", 0),
        "errors_by_type": {k: v for k, v in types.items() if k != "ok"},
        "crashes": len(crashes),
        "hangs_timeouts": len(hangs),
        "untyped_errors": len(untyped),
        "documents_with_page_errors": sum(1 for r in results.values() if r["page_errors"]),
        "password_files": len(pw_open),
        "password_files_opened_with_password": sum(pw_open.values()),
        "password_files_without_password": dict(collections.Counter(pw_without.values())),
        "page_count_checks": len(page_checks),
        "page_count_mismatches": len(mismatches),
        "seconds": round(seconds, 1),
        "files_per_s": round(len(files) / seconds, 2),
    }
    print("\nfile outcome            count")
    for k, v in sorted(types.items(), key=lambda kv: -kv[1]):
        print(f"{k:22s} {v:6d}")
    for k, v in summary.items():
        print(f"{k:40s} {v}")
    out = {
        "summary": summary,
        "settings": {"workers": args.workers, "ocr": args.ocr, "timeout_s": args.timeout},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "pymupdf": pymupdf.__version__,
                    "load_avg_1m": os.getloadavg()[0]},
        "crashes": crashes, "hangs": hangs, "untyped": {p: results[p] for p in untyped},
        "password_files": {p: {"with_password": results[p]["type"] or "ok", "without": pw_without[p]} for p in pw_open},
        "page_count_mismatches": mismatches,
        "files_detail": results,
    }
    dest = ROOT / "benchmarks" / "results" / "ingest_robustness.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=1))
    print(f"wrote {dest}")
    sys.exit(0 if not (untyped or mismatches) else 1)


if __name__ == "__main__":
    main()
