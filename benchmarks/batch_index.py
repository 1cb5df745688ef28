"""Batch indexing at scale, and crash safety: one `mmrag index` run over two real corpora.

Indexes the 45 PDFs of ../shared/data/mmlongbench-doc-subset plus the 1,055 files of
../shared/data/pdf-robustness (encrypted, damaged, fuzzed, scanned, empty ...) with the default
CPU preset, into a scratch folder (never the repo):

  A  one uninterrupted run: wall time, pages/s, the summary table (ok, failed by type, pages, OCR);
  B  the same run killed with SIGKILL part-way (after its first commits), then `--resume`.

It then checks that B ends with the same index as A: the same documents, the same pages (text
and content hash), and the same vector for every chunk. Prints a table and writes
benchmarks/results/batch_index.json.

    python benchmarks/batch_index.py [--work /tmp/mmrag-batch] [--workers 2] [--kill-after 0.5]

With ``--engine ray`` it compares engines instead: the same inputs indexed by the process pool
and by the Ray Data engine (a local Ray with as many CPUs as --workers), back to back in rotating
order over ``--rounds``; pages/s of each and their ratio from one run, and whether both built the
same index; written to benchmarks/results/batch_index_ray.json.

``--runtimes torch onnx-int8`` instead compares the document encoder's runtimes in one run
(writes benchmarks/results/batch_index_runtimes.json): MiniLM chunks/s on the real chunks of the
PDFs (each runtime in turn, rotating order, best of ``--repeats``), then one full `mmrag index`
per runtime with its wall time, pages/s and peak RSS (the process tree, sampled every 0.2 s).

    python benchmarks/batch_index.py --runtimes torch onnx-int8 [--pdfs 10] [--index-pdfs 10] [--before]

``--before`` adds one more full index run as the product stood when issue #15 was filed: the first
runtime for documents and rapidocr's own settings (per-line angle classifier, no memory arena);
every run's pages/s is then also given as a ratio to it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import package_versions  # benchmarks/ is sys.path[0] when a script runs

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MMRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))
CORPORA = [DATA / "mmlongbench-doc-subset" / "documents", DATA / "pdf-robustness"]
RESULTS = ROOT / "benchmarks" / "results" / "batch_index.json"


def mmrag(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmrag", *args]


def run_index(inputs: list[Path], index: Path, extra: list[str], log: Path) -> tuple[dict, float]:
    """One `mmrag index --json` run to completion: (report, wall seconds)."""
    t0 = time.monotonic()
    with open(log, "a") as err:
        out = subprocess.run(mmrag("index", *map(str, inputs), "--index", str(index), "--json", *extra),
                             stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
    seconds = time.monotonic() - t0
    if out.returncode != 0:
        raise SystemExit(f"mmrag index exited {out.returncode}; see {log}")
    return json.loads(out.stdout), seconds


def killed_run(inputs: list[Path], index: Path, extra: list[str], kill_after: float, log: Path) -> dict:
    """Start a run, SIGKILL it after ``kill_after`` seconds once something is committed."""
    from mmrag.cli.batch import committed_documents

    with open(log, "a") as err:
        proc = subprocess.Popen(mmrag("index", *map(str, inputs), "--index", str(index), "--json", *extra),
                                stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT, start_new_session=True)
    t0 = time.monotonic()
    while proc.poll() is None and (time.monotonic() - t0 < kill_after or committed_documents(index) == 0):
        time.sleep(0.5)
    if proc.poll() is not None:
        raise SystemExit("the run finished before it could be killed; lower --kill-after")
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: the ingestion workers too
    proc.wait()
    return {"killed_after_s": round(time.monotonic() - t0, 1), "documents_committed_at_kill": committed_documents(index)}


def versions() -> dict:
    return package_versions("mmrag", "pymupdf", "faiss-cpu", "bm25s", "sentence-transformers", "torch", "rapidocr",
                            "onnxruntime", python=True)


def chunk_texts(pdfs: list[Path], workers: int) -> tuple[list[str], int]:
    """The texts `mmrag index` encodes for these PDFs (chunk text with its heading), and their pages."""
    from mmrag.config import load_config
    from mmrag.ingest import chunk_pages, ingest_many

    cfg = load_config(str(ROOT / "configs" / "default.yaml"))
    texts: list[str] = []
    pages = 0
    for r in ingest_many(pdfs, cfg.ingest, workers=workers, progress=False):
        if r.document is not None:
            doc_pages = list(r.document.pages)
            pages += len(doc_pages)
            texts += [c.index_text for c in chunk_pages(doc_pages, words=cfg.ingest.chunk_words)]
    return texts, pages


# rapidocr as mmrag ran it before issue #15: its per-line angle classifier, no memory arena
OCR_BEFORE = {"Global.use_cls": True, "EngineConfig.onnxruntime.enable_cpu_mem_arena": False}


def runtime_config(work: Path, runtime: str, name: str | None = None, ocr_options: dict | None = None) -> Path:
    """configs/default.yaml with the text field's encoder on ``runtime`` (and rapidocr options)."""
    text = (ROOT / "configs" / "default.yaml").read_text()
    marker = "    input: chunks\n"
    assert marker in text, "configs/default.yaml changed: update runtime_config"
    text = text.replace(marker, marker + f"    options: {{runtime: {runtime}}}\n", 1)
    if ocr_options:
        assert "\ningest:\n" in text, "configs/default.yaml changed: update runtime_config"
        text = text.replace("\ningest:\n", f"\ningest:\n  ocr_options: {json.dumps(ocr_options)}\n", 1)
    path = work / f"config-{name or runtime}.yaml"
    path.write_text(text)
    return path


def index_with_peak_rss(inputs: list[Path], index: Path, config: Path, workers: int, log: Path) -> dict:
    """One `mmrag index` run: wall seconds, pages/s and the peak RSS of its process tree."""
    import psutil

    with open(log, "a") as err:
        proc = subprocess.Popen(mmrag("index", *map(str, inputs), "--index", str(index), "--json", "--quiet",
                                      "--workers", str(workers), "--config", str(config)),
                                stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
        t0 = time.monotonic()
        peak = 0
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [root] + root.children(recursive=True)
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.2)
        out = proc.stdout.read()
        wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"mmrag index exited {proc.returncode}; see {log}")
    pages = json.loads(out)["totals"]["pages"]
    return {"wall_s": round(wall, 1), "pages": pages, "pages_per_second": round(pages / wall, 3),
            "peak_rss_mb": round(peak / 2**20)}


def compare_runtimes(args: argparse.Namespace) -> None:
    """Chunks/s of the document encoder and full-index pages/s, per runtime, in one run."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("MMRAG_CACHE_DIR", str(args.work / "cache"))
    from mmrag.encoders import load

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    log = args.work / "stderr.log"
    pdfs = sorted(p for c in args.inputs for p in c.rglob("*.pdf"))
    texts, pages = chunk_texts(pdfs[: args.pdfs], args.workers)
    encoders = {rt: load("minilm", runtime=rt) for rt in args.runtimes}
    for enc in encoders.values():
        enc.encode_text(texts[:8])  # load, export and check before timing
    seconds: dict[str, list[float]] = {rt: [] for rt in args.runtimes}
    vectors: dict[str, np.ndarray] = {}
    for rep in range(args.repeats):
        for rt in args.runtimes[rep % len(args.runtimes):] + args.runtimes[: rep % len(args.runtimes)]:
            t0 = time.perf_counter()
            vectors[rt] = np.vstack([encoders[rt].encode_text(texts[i:i + 256]) for i in range(0, len(texts), 256)])
            seconds[rt].append(time.perf_counter() - t0)
            print(f"  encode {rt}: {len(texts) / seconds[rt][-1]:.1f} chunks/s", file=sys.stderr, flush=True)
    base = args.runtimes[0]
    encode = {rt: {"best_s": round(min(v), 2), "chunks_per_second": round(len(texts) / min(v), 2),
                   "speedup_vs_" + base: round(min(seconds[base]) / min(v), 3),
                   "min_cosine_vs_" + base: float(np.min(np.sum(vectors[rt] * vectors[base], axis=1))),
                   "mean_cosine_vs_" + base: float(np.mean(np.sum(vectors[rt] * vectors[base], axis=1)))}
              for rt, v in seconds.items()}
    del encoders
    index: dict[str, dict] = {}
    index_pdfs = pdfs[: args.index_pdfs]
    for rt in args.runtimes:
        print(f"  mmrag index ({rt}) of {len(index_pdfs)} PDFs ...", file=sys.stderr, flush=True)
        index[rt] = index_with_peak_rss(index_pdfs, args.work / f"index-{rt}", runtime_config(args.work, rt),
                                        args.workers, log)
    if args.before:
        # the product when the issue was filed: PyTorch documents and rapidocr's own OCR settings
        print(f"  mmrag index (before: {base}, OCR {OCR_BEFORE}) ...", file=sys.stderr, flush=True)
        index["before"] = index_with_peak_rss(index_pdfs, args.work / "index-before",
                                              runtime_config(args.work, base, "before", OCR_BEFORE),
                                              args.workers, log)
        index["before"]["what"] = f"{base} documents, OCR options {OCR_BEFORE}"
    for rt in index:
        index[rt]["speedup_vs_" + base] = round(index[rt]["pages_per_second"] / index[base]["pages_per_second"], 3)
        if args.before:
            index[rt]["speedup_vs_before"] = round(
                index[rt]["pages_per_second"] / index["before"]["pages_per_second"], 3)
    result = {
        "settings": {"pdfs_for_encoding": min(args.pdfs, len(pdfs)), "chunks": len(texts), "pages": pages,
                     "repeats": args.repeats, "pdfs_indexed": len(index_pdfs), "workers": args.workers,
                     "encode_batch": 256, "load_average_at_start": os.getloadavg(),
                     "note": "the machine is shared with other engineers: compare the ratios, not the absolute rates"},
        "encode": encode, "index": index, "targets": {"encode_speedup": 2.5, "index_speedup": 2.0},
        "cpu_count": os.cpu_count(), "machine": platform.machine(), "versions": versions(),
    }
    out = ROOT / "benchmarks" / "results" / "batch_index_runtimes.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'runtime':<10} {'chunks/s':>9} {'x':>6} {'min cos':>8} {'pages/s':>8} {'x':>6} {'peak RSS MB':>12}")
    for rt in args.runtimes:
        e, i = encode[rt], index[rt]
        print(f"{rt:<10} {e['chunks_per_second']:9.1f} {e['speedup_vs_' + base]:6.2f} "
              f"{e['min_cosine_vs_' + base]:8.4f} {i['pages_per_second']:8.3f} {i['speedup_vs_' + base]:6.2f} "
              f"{i['peak_rss_mb']:12d}")
    if args.before:
        i = index["before"]
        print(f"{'before':<10} {'':>9} {'':>6} {'':>8} {i['pages_per_second']:8.3f} {i['speedup_vs_' + base]:6.2f} "
              f"{i['peak_rss_mb']:12d}")
        print("index pages/s vs before: " + ", ".join(f"{rt} {index[rt]['speedup_vs_before']:.2f}x"
                                                      for rt in args.runtimes))
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/mmrag-batch"))
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--batch-size", type=int, default=None, help="documents per commit (default: the config's)")
    ap.add_argument("--kill-after", type=float, default=0.5, help="kill B after this share of A's wall time")
    ap.add_argument("--timeout", type=float, default=None,
                    help="per-document ingest timeout (default: the preset's); raise it on a loaded machine so "
                         "that A and B do not differ by which documents happened to time out")
    ap.add_argument("--inputs", type=Path, nargs="+", default=CORPORA, help="folders or files to index (default: both corpora)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    ap.add_argument("--engine", choices=["local", "ray"], default="local",
                    help="ray: pages/s of the Ray engine vs the process pool with the same workers (no kill test)")
    ap.add_argument("--rounds", type=int, default=2, help="with --engine ray: rounds in rotating order")
    ap.add_argument("--recompare", action="store_true",
                    help="only redo the A/B comparison of the folders in --work and update --out")
    ap.add_argument("--runtimes", nargs="+", default=None, choices=["torch", "onnx", "onnx-int8"],
                    help="compare the document encoder's runtimes instead (the first is the baseline)")
    ap.add_argument("--pdfs", type=int, default=10, help="with --runtimes: PDFs whose chunks are encoded")
    ap.add_argument("--index-pdfs", type=int, default=45, help="with --runtimes: PDFs indexed per runtime")
    ap.add_argument("--repeats", type=int, default=2, help="with --runtimes: encoding passes per runtime")
    ap.add_argument("--before", action="store_true",
                    help="with --runtimes: one more index run as the product stood before issue #15 "
                         "(the first runtime, rapidocr's per-line angle classifier, no memory arena)")
    args = ap.parse_args()
    if args.runtimes:
        if args.inputs == CORPORA:
            args.inputs = CORPORA[:1]
        return compare_runtimes(args)
    if args.recompare:
        from mmrag.cli.batch import compare_contents, index_contents

        result = json.loads(args.out.read_text())
        result["same_index"] = compare_contents(index_contents(args.work / "A"), index_contents(args.work / "B"))
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result["same_index"], indent=2))
        return
    for c in args.inputs:
        if not c.exists():
            raise SystemExit(f"missing {c}: this benchmark needs ../shared/data (set MMRAG_SHARED_DATA)")
    sys.path.insert(0, str(ROOT))
    from mmrag.cli.batch import compare_contents, index_contents, summarize

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    log = args.work / "stderr.log"
    extra = ["--workers", str(args.workers), "--quiet"]
    config = "configs/default.yaml"
    if args.timeout:
        config = str(args.work / "config.yaml")
        text = (ROOT / "configs" / "default.yaml").read_text()
        Path(config).write_text(text.replace("  timeout_s: 60", f"  timeout_s: {args.timeout:g}"))
        extra += ["--config", config]
    if args.batch_size:
        extra += ["--batch-size", str(args.batch_size)]
    files = sum(1 for c in args.inputs for p in c.rglob("*") if p.suffix.lower() == ".pdf")

    if args.engine == "ray":
        return ray_vs_process_pool(args, extra, log, files)
    report_a, wall_a = run_index(args.inputs, args.work / "A", extra, log)
    summary_a = summarize(report_a, wall_a)
    kill = killed_run(args.inputs, args.work / "B", extra, args.kill_after * wall_a, log)
    report_b, wall_b = run_index([], args.work / "B", extra + ["--resume"], log)
    summary_b = summarize(report_b, wall_b)
    same = compare_contents(index_contents(args.work / "A"), index_contents(args.work / "B"))

    result = {
        "inputs": [str(c) for c in args.inputs], "pdf_files": files,
        "settings": {"config": "configs/default.yaml", "ingest_timeout_s": args.timeout or "preset (60)",
                     "workers": args.workers, "batch_size": args.batch_size, "kill_after_share_of_A": args.kill_after,
                     "load_average_at_start": os.getloadavg()},
        "uninterrupted": {"wall_s": round(wall_a, 1), **summary_a},
        "killed_then_resumed": {**kill, "resume_wall_s": round(wall_b, 1), "resume": summary_b,
                                "re_encoded_documents": summary_b["indexed"],
                                "skipped_as_already_indexed": summary_b["unchanged_or_skipped"]},
        "same_index": same,
        "cpu_count": os.cpu_count(), "machine": platform.machine(), "versions": versions(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    a = result["uninterrupted"]
    rows = [("files (PDF)", files), ("documents in report", a["documents"]), ("indexed ok", a["indexed"]),
            ("unchanged / duplicate", a["unchanged_or_skipped"]), ("failed", a["failed"])]
    rows += [(f"  {k}", v) for k, v in a["failed_by_type"].items()]
    rows += [("pages", a["pages"]), ("OCR pages", a["ocr_pages"]), ("wall time (s)", a["wall_s"]),
             ("pages/s", a["pages_per_second"]),
             ("B killed after (s)", kill["killed_after_s"]), ("B docs committed at kill", kill["documents_committed_at_kill"]),
             ("B resume wall (s)", result["killed_then_resumed"]["resume_wall_s"]),
             ("B resume re-encoded docs", summary_b["indexed"]),
             ("B resume skipped (already indexed)", summary_b["unchanged_or_skipped"]),
             ("same documents / pages / vector keys", f"{same['same_documents']} / {same['same_pages']} / {same['same_vector_keys']}"),
             ("max |vector A - vector B|", same["max_abs_vector_diff"])]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"wrote {args.out}")


def ray_vs_process_pool(args: argparse.Namespace, extra: list[str], log: Path, files: int) -> None:
    """Both engines on the same inputs with the same workers, in rotating order over --rounds
    (pool then Ray, Ray then pool, ...): pages/s of each over all rounds, their ratio, and
    whether the last two builds hold the same index."""
    from mmrag.cli.batch import compare_contents, index_contents, summarize

    engines = {"process_pool": [], "ray": []}
    for r in range(args.rounds):
        order = ["process_pool", "ray"] if r % 2 == 0 else ["ray", "process_pool"]
        for name in order:
            folder = args.work / f"{name}-{r}"
            load = os.getloadavg()
            report, wall = run_index(args.inputs, folder, extra + (["--engine", "ray"] if name == "ray" else []), log)
            engines[name].append({"round": r, "load_average_at_start": load, "load_average_at_end": os.getloadavg(),
                                  **summarize(report, wall)})
    totals = {name: {"pages": sum(x["pages"] for x in runs), "seconds": round(sum(x["seconds"] for x in runs), 2)}
              for name, runs in engines.items()}
    for t in totals.values():
        t["pages_per_second"] = round(t["pages"] / t["seconds"], 3) if t["seconds"] else 0.0
    last = args.rounds - 1
    same = compare_contents(index_contents(args.work / f"process_pool-{last}"), index_contents(args.work / f"ray-{last}"))
    out = args.out if args.out != RESULTS else RESULTS.with_name("batch_index_ray.json")
    result = {
        "inputs": [str(c) for c in args.inputs], "pdf_files": files,
        "settings": {"config": "configs/default.yaml", "ingest_timeout_s": args.timeout or "preset (60)",
                     "workers": args.workers, "batch_size": args.batch_size, "rounds": args.rounds,
                     "ray": f"local Ray, num_cpus={args.workers}, one encoder actor",
                     "timing": "wall time of each `mmrag index` process (Ray start-up and model loading included)"},
        "runs": engines, "totals": totals,
        "ray_over_process_pool_pages_per_s": round(totals["ray"]["pages_per_second"]
                                                   / totals["process_pool"]["pages_per_second"], 3)
        if totals["process_pool"]["pages_per_second"] else None,
        "same_index": {k: same[k] for k in ("same_documents", "same_pages", "same_vector_keys",
                                            "max_abs_vector_diff", "pages", "vectors")},
        "cpu_count": os.cpu_count(), "machine": platform.machine(), "versions": {**versions(), **package_versions("ray")},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'round':<8}{'engine':<14}{'pages':>7}{'seconds':>10}{'pages/s':>9}{'load at end':>12}")
    for name, runs in engines.items():
        for x in runs:
            print(f"{x['round']:<8}{name:<14}{x['pages']:>7}{x['seconds']:>10}{x['pages_per_second']:>9}"
                  f"{x['load_average_at_end'][0]:>12.1f}")
    print(f"ray / process pool pages/s: {result['ray_over_process_pool_pages_per_s']} ({args.workers} workers, "
          f"{args.rounds} rounds); same documents / pages / vector keys: {same['same_documents']} / "
          f"{same['same_pages']} / {same['same_vector_keys']}, max |pool - ray| {same['max_abs_vector_diff']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
