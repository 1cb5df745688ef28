"""Latency of single-token and attention rerankers against full-generation listwise ranking.

Same model (default: bundled SmolLM2-135M-Instruct), same window and the same DL19 queries and
passages, in one run: FIRST (one forward pass, letter logits) vs RankGPT (generates the whole
permutation), ICR (prefix pass + two short query passes, no generation) vs RankGPT. Limits from
the issue: FIRST / RankGPT <= 0.5, ICR / RankGPT <= 0.4. Writes
benchmarks/results/rerank_latency.json.

    python benchmarks/rerank_latency.py --queries 2 --window 20
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="causal LM id or folder (default: bundled SmolLM2)")
    ap.add_argument("--queries", type=int, default=2)
    ap.add_argument("--window", type=int, default=20, help="passages per prompt (= candidates per query)")
    args = ap.parse_args()

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
