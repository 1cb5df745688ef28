"""Latency of single-token and attention rerankers against full-generation listwise ranking.

Same model (default: bundled SmolLM2-135M-Instruct), same window and the same DL19 queries and
passages, in one run: FIRST (one forward pass, letter logits) vs RankGPT (generates the whole
permutation), ICR (prefix pass + two short query passes, no generation) vs RankGPT. Limits from
the issue: FIRST / RankGPT <= 0.5, ICR / RankGPT <= 0.4. Writes
benchmarks/results/rerank_latency.json.

    python benchmarks/rerank_latency.py --queries 2 --window 20

``--fusion`` instead times the CPU fusion reranker (MiniLM bi-encoder + SPLADE-tiny + first
stage) on 100 DL19 passages per query that no reranker has seen (passage caches off), once per
variant in rotating order: PyTorch float32, ONNX float32 and ONNX int8 scoring every candidate
with every component (as before the cascade), and the default (ONNX int8, MiniLM on the SPLADE +
first-stage top 60); and the start-up to the
first answer (model load, export, int8 quantisation, probe check) in a fresh process with an
empty and then a filled export cache. Limit from the issue: int8 median < 300 ms per query on 2
cores. Writes benchmarks/results/rerank_latency_fusion.json.

    python benchmarks/rerank_latency.py --fusion --queries 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mmrag.eval.rerank import load_rerank_set  # noqa: E402

DATA = Path(os.environ.get("MMRAG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "trec-dl19-passage-bm25top100"
LIMITS = {"first / rankgpt": 0.5, "icr / rankgpt": 0.4}


def summarise(args, queries, seconds, out_tokens, rankgpt_budget) -> dict:
    """Means, ratios and settings; written after every query so a cut-short run leaves a file."""
    mean = {k: sum(v) / len(v) for k, v in seconds.items()}
    ratios = {"first / rankgpt": mean["first"] / mean["rankgpt"], "icr / rankgpt": mean["icr"] / mean["rankgpt"]}

    import torch
    import transformers

    result = {
        "model": args.model or "SmolLM2-135M-Instruct (bundled)", "window": args.window,
        "queries": [q.qid for q in queries][: len(seconds["icr"])], "seconds_per_query": mean, "per_query_seconds": seconds,
        "ratios": ratios, "limits": LIMITS, "pass": {k: ratios[k] <= LIMITS[k] for k in ratios},
        "rankgpt_generated_tokens": out_tokens, "rankgpt_max_new_tokens": rankgpt_budget,
        "cpu_count": os.cpu_count(), "load_avg": os.getloadavg(), "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    out = ROOT / "benchmarks" / "results" / "rerank_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


# name: (runtime, cascade_depth); None scores every candidate with every component (as before the
# cascade), "auto" is the default (MiniLM reads the SPLADE + first-stage top 60).
FUSION_VARIANTS = {"torch": ("torch", None), "onnx": ("onnx", None), "onnx-int8-all": ("onnx-int8", None),
                   "onnx-int8": ("onnx-int8", "auto")}
FUSION_RUNTIMES = tuple(FUSION_VARIANTS)
FUSION_LIMIT_MS = 300.0
STARTUP = """
import os, sys, time
t0 = time.perf_counter()
from mmrag.rerankers import load
from mmrag.types import Candidate
r = load("fusion", runtime=sys.argv[1])
r.rerank("how do fleas feed", [Candidate("a", "Fleas feed on blood.", 1.0), Candidate("b", "Paris.", 0.5)])
print(time.perf_counter() - t0)
"""


def startup_seconds(runtime: str, cache: Path) -> float:
    """Seconds from a fresh interpreter to the first fusion answer with ``runtime`` (imports,
    model load, and with an empty ``cache`` the export, quantisation and probe check)."""
    import subprocess

    env = {**os.environ, "MMRAG_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", STARTUP, runtime], env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    return float(out.stdout.strip().splitlines()[-1])


def fusion_main(args) -> None:
    """Fusion rerank latency per runtime (uncached passages) and start-up, in one run."""
    import statistics
    import tempfile

    import numpy as np

    from mmrag.rerankers import load

    queries, _ = load_rerank_set(DATA)
    queries = queries[: args.queries]
    runtimes = list(args.runtimes)
    startup: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rt in runtimes:
            engine = FUSION_VARIANTS[rt][0]
            if engine not in {FUSION_VARIANTS[r][0] for r in startup}:
                cache = Path(tmp) / engine
                startup[rt] = {"empty_cache_s": round(startup_seconds(engine, cache), 2),
                               "filled_cache_s": round(startup_seconds(engine, cache), 2)}
            else:
                startup[rt] = next(v for r, v in startup.items() if FUSION_VARIANTS[r][0] == engine)
            print(f"  start-up {rt}: {startup[rt]}", file=sys.stderr, flush=True)
        os.environ["MMRAG_CACHE_DIR"] = str(Path(tmp) / FUSION_VARIANTS[runtimes[-1]][0])
        rerankers = {rt: load("fusion", runtime=FUSION_VARIANTS[rt][0], cascade_depth=FUSION_VARIANTS[rt][1])
                     for rt in runtimes}
        for r in rerankers.values():
            r.rerank(queries[0].query, queries[0].candidates[:2])
            for c in r.components:
                c.doc_cache.size = 0  # every passage is new to the reranker, as in a first search
        ms: dict[str, list[float]] = {rt: [] for rt in runtimes}
        cpu_ms: dict[str, list[float]] = {rt: [] for rt in runtimes}  # all threads: the load-independent cost
        overlap: dict[str, list[int]] = {rt: [] for rt in runtimes}
        for n, q in enumerate(queries):
            top = {}
            for rt in runtimes[n % len(runtimes):] + runtimes[: n % len(runtimes)]:
                t0, c0 = time.perf_counter(), time.process_time()
                ranked = rerankers[rt].rerank(q.query, q.candidates[:100])
                ms[rt].append(1000 * (time.perf_counter() - t0))
                cpu_ms[rt].append(1000 * (time.process_time() - c0))
                top[rt] = {s.id for s in ranked[:10]}
                print(f"  {q.qid} {rt}: {ms[rt][-1]:.0f} ms ({cpu_ms[rt][-1]:.0f} ms CPU)", file=sys.stderr, flush=True)
            for rt in runtimes:
                overlap[rt].append(len(top[rt] & top[runtimes[0]]))
    import onnxruntime
    import torch

    base = runtimes[0]
    median = {rt: statistics.median(v) for rt, v in ms.items()}
    cpu = {rt: statistics.median(v) for rt, v in cpu_ms.items()}
    result = {
        "reranker": "fusion (bi-encoder MiniLM 0.55 + SPLADE-tiny 0.2 + first stage 0.25)", "passages_per_query": 100,
        "variants": {rt: {"runtime": FUSION_VARIANTS[rt][0], "cascade_depth": rerankers[rt].cascade_depth}
                     for rt in runtimes},
        "queries": [q.qid for q in queries], "median_ms_per_query": median, "per_query_ms": ms,
        "median_cpu_ms_per_query": cpu, "per_query_cpu_ms": cpu_ms,
        f"cpu_speedup_vs_{base}": {rt: cpu[base] / cpu[rt] for rt in runtimes},
        f"speedup_vs_{base}": {rt: median[base] / median[rt] for rt in runtimes},
        f"top10_overlap_with_{base}": {rt: float(np.mean(v)) for rt, v in overlap.items()},
        "startup_s": startup, "limit_ms": FUSION_LIMIT_MS,
        "pass": {rt: median[rt] < FUSION_LIMIT_MS for rt in runtimes},
        "cpu_count": os.cpu_count(), "load_avg": os.getloadavg(), "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "note": "the machine is shared with other engineers: compare the ratios, not the absolute times",
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
    }
    out = ROOT / "benchmarks" / "results" / "rerank_latency_fusion.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'variant':<14} {'median ms':>10} {'x':>6} {'CPU ms':>8} {'x':>6} {'top-10 overlap':>15} "
          f"{'start-up s (empty / filled cache)':>34}")
    for rt in runtimes:
        print(f"{rt:<14} {median[rt]:10.0f} {result[f'speedup_vs_{base}'][rt]:6.2f} "
              f"{cpu[rt]:8.0f} {result[f'cpu_speedup_vs_{base}'][rt]:6.2f} "
              f"{result[f'top10_overlap_with_{base}'][rt]:15.1f} "
              f"{startup[rt]['empty_cache_s']:>17.1f} / {startup[rt]['filled_cache_s']:.1f}")
    print(f"limit {FUSION_LIMIT_MS:.0f} ms: " + ", ".join(f"{rt} {'ok' if ok else 'over'}" for rt, ok in result["pass"].items()))
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="causal LM id or folder (default: bundled SmolLM2)")
    ap.add_argument("--queries", type=int, default=2)
    ap.add_argument("--window", type=int, default=20, help="passages per prompt (= candidates per query)")
    ap.add_argument("--fusion", action="store_true", help="time the CPU fusion reranker per runtime instead")
    ap.add_argument("--runtimes", nargs="+", default=list(FUSION_RUNTIMES), choices=FUSION_RUNTIMES,
                    help="with --fusion: runtimes to compare (the first is the baseline)")
    args = ap.parse_args()
    if args.fusion:
        return fusion_main(args)

    from mmrag.rerankers import load

    queries, _ = load_rerank_set(DATA)
    queries = queries[: args.queries]
    opts = {"model": args.model, "window": args.window, "step": max(1, args.window // 2)}
    rerankers = {"rankgpt": load("rankgpt", **opts), "first": load("first", **opts), "icr": load("icr", **opts)}
    for r in rerankers.values():  # load weights before timing
        r.rerank(queries[0].query, queries[0].candidates[:2])
    seconds: dict[str, list[float]] = {k: [] for k in rerankers}
    out_tokens: list[int] = []
    for q in queries:
        cands = q.candidates[: args.window]
        for name, r in rerankers.items():
            t0 = time.perf_counter()
            r.rerank(q.query, cands)
            seconds[name].append(time.perf_counter() - t0)
            if name == "rankgpt":
                out_tokens.append(len(r.lm[1](r.last_output, add_special_tokens=False)["input_ids"]))
            print(f"  {q.qid} {name}: {seconds[name][-1]:.2f} s", file=sys.stderr, flush=True)
        result = summarise(args, queries, seconds, out_tokens, rerankers["rankgpt"].new_tokens(args.window))
    mean, ratios = result["seconds_per_query"], result["ratios"]
    print(f"{'reranker':<10} {'s/query':>9}")
    for k, v in mean.items():
        print(f"{k:<10} {v:9.2f}")
    for k, v in ratios.items():
        print(f"{k:<16} {v:6.3f}  (limit {LIMITS[k]}, {'ok' if v <= LIMITS[k] else 'over'})")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
