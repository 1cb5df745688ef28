"""`mmrag ask` on the user's path: start-up to the first answer and p50 latency per question.

Asks the first ``--questions`` MMLongBench-Doc questions of ../shared/data/mmlongbench-doc-subset
against an index of its PDFs built with the same preset (``--index``, e.g. the one
`benchmarks/batch_index.py --runtimes ...` leaves in its work folder), through the Python API the
CLI uses, in a fresh process: the first question's time includes imports, model load and the
ONNX export when ``MMRAG_CACHE_DIR`` is empty. Writes benchmarks/results/ask_latency.json.

    python benchmarks/ask_latency.py --index /tmp/mmrag-runtimes/index-onnx-int8 [--questions 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import package_versions  # benchmarks/ is sys.path[0] when a script runs

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MMRAG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "mmlongbench-doc-subset"
CHILD = """
import json, sys, time
t0 = time.perf_counter()
from mmrag.api import RAG
rag = RAG.from_config(sys.argv[1], index=sys.argv[2])
times = []
for q in json.loads(sys.argv[3]):
    t = time.perf_counter()
    rag.ask(q)
    times.append(time.perf_counter() - t)
print(json.dumps({"first_answer_s": time.perf_counter() - t0 - sum(times[1:]), "seconds": times}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", type=Path, required=True, help="an index of the subset's PDFs built with --config")
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--questions", type=int, default=20)
    args = ap.parse_args()
    questions = [json.loads(line)["question"] for line in (DATA / "questions.jsonl").open()][: args.questions]
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cache in ("empty", "filled"):  # the same cache folder: the second run reuses the export
            env = {**os.environ, "MMRAG_CACHE_DIR": tmp, "HF_HUB_OFFLINE": "1"}
            out = subprocess.run([sys.executable, "-c", CHILD, args.config, str(args.index), json.dumps(questions)],
                                 env=env, capture_output=True, text=True, cwd=ROOT)
            if out.returncode != 0:
                raise SystemExit(out.stderr[-3000:])
            runs[cache] = json.loads(out.stdout.strip().splitlines()[-1])
    later = runs["filled"]["seconds"][1:]
    result = {
        "questions": len(questions), "index": str(args.index), "config": args.config,
        "p50_ms_after_first": 1000 * statistics.median(later),
        "max_ms_after_first": 1000 * max(later),
        "first_answer_s": {k: v["first_answer_s"] for k, v in runs.items()},
        "per_question_s": runs["filled"]["seconds"],
        "cpu_count": os.cpu_count(), "load_avg": os.getloadavg(), "platform": platform.platform(),
        "note": "the machine is shared with other engineers; first_answer_s counts imports, model load and, "
                "with an empty cache, the ONNX export",
        "versions": package_versions("mmrag", "torch", "onnxruntime", "sentence-transformers", python=True),
    }
    out_path = ROOT / "benchmarks" / "results" / "ask_latency.json"
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"questions                 {len(questions)}")
    print(f"p50 per question (ms)     {result['p50_ms_after_first']:.1f}")
    print(f"first answer, empty cache {runs['empty']['first_answer_s']:.2f} s")
    print(f"first answer, filled      {runs['filled']['first_answer_s']:.2f} s")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
