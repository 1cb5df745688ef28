"""Train cross-encoders from the bundled MiniLM on SciFact *train* and compare them with the fusion reranker.

Every step is an ``mmrag`` command (printed, and stored in the results with its output), run one
after the other; a step whose output JSON already exists is not run again, so an interrupted run
resumes. Models go to ``--work`` (default ``.cache/train-ce``, git-ignored), never into git.

Runs: ``human-500`` (first 500 SciFact train queries, labelled positives), ``synth-50`` (first 50,
one passage per query written by SmolLM2-135M through the hf-causal generator), ``human-50`` (the
same 50 queries with labelled positives: the control for synth-50). Training settings are the
method's defaults (mmrag/train/cross_encoder.py DEFAULTS: hard negatives from the preset's own
first stage, top 30, plus easy ones). Evaluated on NovelEval (21 queries, depth 20), TREC DL19
(43 queries, BM25 top 100) and SciFact test (first 100 queries, the preset's hybrid first stage,
top 20 reranked), beside the fusion reranker on the same SciFact queries and depth.

    python benchmarks/train_cross_encoder.py [--work .cache/train-ce] [--only human-500,synth-50,human-50]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import package_versions  # noqa: E402

DATA = Path(os.environ.get("MMRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))
OUT = ROOT / "benchmarks" / "results" / "train_cross_encoder.json"
MMRAG = str(Path(sys.executable).with_name("mmrag"))
SCIFACT_QUERIES, SCIFACT_DEPTH = 100, 20

RUNS = {  # name: (train queries, extra train flags)
    "human-500": (500, []),
    "synth-50": (50, ["--synthetic-docs", "--generator", "hf-causal"]),
    "human-50": (50, []),
}
OPTIONS = {"human-500": '{}', "synth-50": '{"synthetic_max_new_tokens": 96}', "human-50": '{}'}  # the method's defaults


COLLECT_ONLY = False  # --collect: report what exists, run nothing


def step(cmd: list[str], out_json: Path) -> dict | None:
    """Run one mmrag command with --json unless its output exists; its parsed output (with the command)."""
    if not out_json.is_file() and COLLECT_ONLY:
        return None
    if not out_json.is_file():
        print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        res = subprocess.run(cmd + ["--json", "-q"], cwd=ROOT, capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr[-2000:]}")
        out_json.write_text(res.stdout.strip().splitlines()[-1] + "\n")
        print(f"  {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return {**json.loads(out_json.read_text()), "command": "mmrag " + " ".join(cmd[1:])}


def evaluate(model: str | None, reranker: str, work: Path, tag: str, dl19: bool) -> dict:
    """NovelEval and SciFact test (first queries) always; DL19 (the slowest) when ``dl19``."""
    rows = {}
    extra = ["--model", model] if model else []
    rows["noveleval"] = step([MMRAG, "eval", "rerank", "--dataset", str(DATA / "noveleval-2306"), "--reranker", reranker,
                              *extra], work / f"eval-novel-{tag}.json")
    rows["scifact"] = step([MMRAG, "eval", "retrieval", "--dataset", str(DATA / "beir-scifact"), "--limit",
                            str(SCIFACT_QUERIES), "--rerank", reranker, "--rerank-depth", str(SCIFACT_DEPTH), *extra],
                           work / f"eval-scifact-{tag}.json")
    if dl19:
        rows["dl19"] = step([MMRAG, "eval", "rerank", "--dataset", str(DATA / "trec-dl19-passage-bm25top100"),
                             "--reranker", reranker, *extra], work / f"eval-dl19-{tag}.json")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=str(ROOT / ".cache" / "train-ce"))
    ap.add_argument("--only", default=",".join(RUNS), help="comma-separated runs")
    ap.add_argument("--collect", action="store_true", help="run nothing; report the outputs already in --work")
    args = ap.parse_args()
    global COLLECT_ONLY
    COLLECT_ONLY = args.collect
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"runs": {}, "baselines": {}}
    names = args.only.split(",")

    def train_run(name: str, dl19: bool) -> None:
        queries, flags = RUNS[name]
        model = work / f"ce-{name}"
        train = step([MMRAG, "train", "reranker", "--method", "cross-encoder", "--beir", str(DATA / "beir-scifact"),
                      "--split", "train", "--candidates", "index", "--depth", "30", "--limit", str(queries), *flags,
                      "--out", str(model), "--options", OPTIONS[name]], work / f"train-{name}.json")
        result["runs"][name] = {"train": train, "eval": evaluate(str(model), "cross-encoder", work, name, dl19)}

    # the first run's NovelEval + SciFact, then the SciFact baselines, then its DL19 (slowest), then the rest
    train_run(names[0], False)
    first = step([MMRAG, "eval", "retrieval", "--dataset", str(DATA / "beir-scifact"), "--limit", str(SCIFACT_QUERIES)],
                 work / "eval-scifact-firststage.json")
    # NovelEval and DL19 baselines: the same queries and depths, measured by benchmarks/rerankers.py
    rerankers = json.loads((OUT.parent / "rerankers.json").read_text())
    src = "benchmarks/results/rerankers.json"
    result["baselines"]["first-stage"] = {"scifact": first, **{
        d: {"nDCG@10": rerankers[d]["first-stage"]["nDCG@10"], "from": src} for d in ("noveleval", "dl19")}}
    result["baselines"]["fusion"] = {"scifact": step(
        [MMRAG, "eval", "retrieval", "--dataset", str(DATA / "beir-scifact"), "--limit", str(SCIFACT_QUERIES),
         "--rerank", "fusion", "--rerank-depth", str(SCIFACT_DEPTH)], work / "eval-scifact-fusion.json"), **{
        d: {"nDCG@10": rerankers[d]["fusion"]["nDCG@10"], "from": src} for d in ("noveleval", "dl19")}}
    train_run(names[0], True)
    for name in names[1:]:
        train_run(name, True)
    result["meta"] = {"cpu_count": os.cpu_count(), "load_avg": os.getloadavg(), "scifact_queries": SCIFACT_QUERIES,
                      "scifact_rerank_depth": SCIFACT_DEPTH,
                      "versions": package_versions("torch", "transformers", "sentence-transformers", "datasets",
                                                   python=True)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2, default=str) + "\n")
    def cell(row: dict | None, width: int) -> str:
        return f"{row['nDCG@10']:{width}.4f}" if row else f"{'-':>{width}}"

    print(f"{'run':<12} {'train s':>8} {'NovelEval':>10} {'DL19':>8} {'SciFact':>8}")
    fusion = result["baselines"]["fusion"]
    print(f"{'fusion':<12} {'':>8} {cell(fusion['noveleval'], 10)} {cell(fusion['dl19'], 8)} {cell(fusion['scifact'], 8)}")
    fs = result["baselines"]["first-stage"]
    print(f"{'first stage':<12} {'':>8} {cell(fs['noveleval'], 10)} {cell(fs['dl19'], 8)} {cell(first, 8)}")
    for name, r in result["runs"].items():
        e, t = r["eval"], r["train"]
        print(f"{name:<12} {t['seconds'] if t else '-':>8} {cell(e.get('noveleval'), 10)} {cell(e.get('dl19'), 8)} "
              f"{cell(e.get('scifact'), 8)}")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
