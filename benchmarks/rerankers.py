"""Reranking quality and latency on TREC DL19 (BM25 top-100) and NovelEval-2306.

``--part encoders``: every query, all candidates: BM25 order, MiniLM bi-encoder, SPLADE-tiny,
RRF of the three, and the weighted fusion with the weights learned on SciFact train
(benchmarks/results/fusion_weights.json); component scores are computed once per query and the
fusion's time is the sum of its components' times (it runs them one after the other).
``--part llm``: the SmolLM2 families (query-likelihood, icr, first, rankgpt) through
``evaluate_rerank`` on the first ``--llm-limit`` queries at ``--llm-depth`` (2 CPU cores cannot
run them on everything in time); the BM25 order of the same subset is reported beside them.
Results merge into benchmarks/results/rerankers.json; the table prints at the end.

    python benchmarks/rerankers.py --part encoders
    python benchmarks/rerankers.py --part llm --llm-limit 3 --llm-depth 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mmrag.eval.rerank import load_rerank_set  # noqa: E402
from mmrag.eval.trec import evaluate  # noqa: E402
from mmrag.rerankers.fusion import fuse  # noqa: E402

DATA = Path(os.environ.get("MMRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))
DATASETS = {"dl19": DATA / "trec-dl19-passage-bm25top100", "noveleval": DATA / "noveleval-2306"}
OUT = ROOT / "benchmarks" / "results" / "rerankers.json"
LLM_FAMILIES = ["query-likelihood", "icr", "first", "rankgpt"]


def ndcg(queries, qrels, columns: dict[str, np.ndarray]) -> float:
    run = {q.qid: {c.id: float(s) for c, s in zip(q.candidates, columns[q.qid])} for q in queries}
    return evaluate({q.qid: qrels[q.qid] for q in queries}, run, ["nDCG@10"])["nDCG@10"]


def learned_weights() -> list[float]:
    return json.loads((ROOT / "benchmarks" / "results" / "fusion_weights.json").read_text())["best"]["weights"]


def part_encoders(name: str, folder: Path, cache: Path | None, limit: int | None, warm: int) -> dict:
    queries, qrels = load_rerank_set(folder)
    queries = [q for q in queries if q.qid in qrels][:limit]
    cols, secs = encoder_columns(name, queries, cache, warm)
    return encoder_rows(queries, qrels, cols, secs, learned_weights())


def encoder_columns(name: str, queries: list, cache: Path | None, warm: int) -> tuple[dict, dict]:
    """Raw scores of BM25 (first stage), MiniLM and SPLADE per query, and their seconds.

    Each finished query is appended to ``cache`` (JSON lines), so a rerun skips it."""
    done: dict[str, dict] = {}
    if cache is not None and cache.is_file():
        for line in cache.read_text().splitlines():
            rec = json.loads(line)
            done[rec["qid"]] = rec
    cols: dict[str, dict[str, np.ndarray]] = {"bm25": {}, "bi-encoder": {}, "splade": {}}
    secs: dict[str, list[float]] = {"bi-encoder": [], "splade": [], "warm": []}
    todo = [q for q in queries if q.qid not in done]
    fresh = []
    if todo:
        from mmrag.rerankers import load

        bi, sp = load("bi-encoder"), load("splade")
        bi.rerank("warm up", todo[0].candidates[:2])
        sp.rerank("warm up", todo[0].candidates[:2])
    # Cold pass: passages are encoded when first seen (DL19/NovelEval passages hardly repeat).
    for i, q in enumerate(queries):
        if q.qid not in done:
            rec = {"qid": q.qid}
            for key, r in (("bi-encoder", bi), ("splade", sp)):
                t0 = time.perf_counter()
                rec[key] = [float(x) for x in r.score(q.query, q.candidates)]
                rec[key + "_s"] = time.perf_counter() - t0
            done[q.qid] = rec
            fresh.append(q)
            if cache is not None:
                with open(cache, "a") as f:
                    f.write(json.dumps(rec) + "\n")
        rec = done[q.qid]
        cols["bm25"][q.qid] = np.array([c.score for c in q.candidates])
        for key in ("bi-encoder", "splade"):
            cols[key][q.qid] = np.asarray(rec[key])
            secs[key].append(rec[key + "_s"])
        print(f"  {name} {i + 1}/{len(queries)}", file=sys.stderr, flush=True)
    # Warm pass over queries encoded in this process: passage vectors now come from the cache,
    # as from an index built beforehand; only the query is encoded and the scores combined.
    for q in fresh[:warm]:
        t0 = time.perf_counter()
        fuse([np.asarray(bi.score(q.query, q.candidates)), np.asarray(sp.score(q.query, q.candidates)),
              np.array([c.score for c in q.candidates])], [1.0, 1.0, 1.0])
        secs["warm"].append(time.perf_counter() - t0)
    return cols, secs


def encoder_rows(queries: list, qrels: dict, cols: dict, secs: dict, weights: list[float]) -> dict:
    """nDCG@10 and ms/query of each component, their RRF and the learned weighted fusion."""
    # BM25's own order is the first-stage order (NovelEval's "score" is 1/rank, same thing).
    fused = {q.qid: fuse([cols["bi-encoder"][q.qid], cols["splade"][q.qid], cols["bm25"][q.qid]], weights)
             for q in queries}
    rrf = {q.qid: fuse([cols["bi-encoder"][q.qid], cols["splade"][q.qid], cols["bm25"][q.qid]], [1, 1, 1],
                       method="rrf") for q in queries}
    ms = {k: 1000 * float(np.mean(v)) if v else float("nan") for k, v in secs.items()}
    rows = {
        "first-stage": {"nDCG@10": ndcg(queries, qrels, cols["bm25"]), "ms_per_query": 0.0},
        "bi-encoder": {"nDCG@10": ndcg(queries, qrels, cols["bi-encoder"]), "ms_per_query": ms["bi-encoder"]},
        "splade": {"nDCG@10": ndcg(queries, qrels, cols["splade"]), "ms_per_query": ms["splade"]},
        "rrf(bi-encoder,splade,first-stage)": {"nDCG@10": ndcg(queries, qrels, rrf),
                                               "ms_per_query": ms["bi-encoder"] + ms["splade"]},
        "fusion": {"nDCG@10": ndcg(queries, qrels, fused), "ms_per_query": ms["bi-encoder"] + ms["splade"],
                   "weights": weights},
        "fusion, passage vectors precomputed": {"nDCG@10": ndcg(queries, qrels, fused),
                                                "ms_per_query": ms["warm"], "weights": weights,
                                                "timed_queries": len(secs["warm"])},
    }
    for r in rows.values():
        r.update({"queries": len(queries), "depth": len(queries[0].candidates)})
    return rows


def part_llm(name: str, folder: Path, families: list[str], limit: int, depth: int) -> dict:
    from mmrag.eval.rerank import evaluate_rerank

    queries, qrels = load_rerank_set(folder)
    queries = [q for q in queries if q.qid in qrels][:limit]
    base = {q.qid: np.array([float(len(q.candidates) - i) for i in range(len(q.candidates))]) for q in queries}
    rows = {"first-stage (same subset)": {"nDCG@10": ndcg(queries, qrels, base), "ms_per_query": 0.0,
                                          "queries": len(queries), "depth": depth}}
    for fam in families:
        res = evaluate_rerank(folder, reranker=fam, config=ROOT / "configs" / "default.yaml", depth=depth,
                              limit=limit, progress=False)
        rows[fam + " (SmolLM2-135M)"] = {k: res[k] for k in ("nDCG@10", "ms_per_query", "queries", "depth",
                                                             "load_seconds", "query_ids")}
        print(f"  {name} {fam}: {res['nDCG@10']:.4f} {res['ms_per_query']:.0f} ms", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["encoders", "llm"], required=True)
    ap.add_argument("--datasets", default="dl19,noveleval")
    ap.add_argument("--families", default=",".join(LLM_FAMILIES))
    ap.add_argument("--llm-limit", type=int, default=3)
    ap.add_argument("--llm-depth", type=int, default=20)
    ap.add_argument("--cache-dir", default=None, help="keep/reuse component scores here (encoders part)")
    ap.add_argument("--limit", type=int, default=None, help="encoders part: first N queries only")
    ap.add_argument("--warm", type=int, default=3, help="encoders part: queries timed again with cached passages")
    args = ap.parse_args()

    result: dict = {}
    for name in args.datasets.split(","):
        folder = DATASETS[name]
        if args.part == "encoders":
            cache = Path(args.cache_dir) / f"rerank-cols-{name}.jsonl" if args.cache_dir else None
            rows = part_encoders(name, folder, cache, args.limit, args.warm)
        else:
            rows = part_llm(name, folder, args.families.split(","), args.llm_limit, args.llm_depth)
        result.setdefault(name, {}).update(rows)

    import torch
    import transformers

    result["_meta"] = {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                       "load_avg": os.getloadavg(), "torch_threads": torch.get_num_threads(),
                       "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
                       "fusion_weights_from": "benchmarks/results/fusion_weights.json (SciFact train)",
                       "fusion_components": ["bi-encoder (MiniLM)", "splade (SPLADE-tiny)", "first-stage score"]}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    merged = json.loads(OUT.read_text()) if OUT.is_file() else {}  # read late: other parts may have run
    for key, rows in result.items():
        merged[key] = {**merged.get(key, {}), **rows} if not key.startswith("_") else rows
    result = merged
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'dataset':<10} {'reranker':<38} {'nDCG@10':>8} {'ms/query':>10} {'queries':>8} {'depth':>6}")
    for ds, rows in result.items():
        if ds.startswith("_"):
            continue
        for rname, r in rows.items():
            print(f"{ds:<10} {rname:<38} {r['nDCG@10']:8.4f} {r['ms_per_query']:10.0f} {r['queries']:8d} {r['depth']:6d}")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
