"""GPU check of the VLM stage with the real checkpoints of configs/gpu.yaml.

    python benchmarks/gpu_check_vlm.py [--pages 8] [--questions 3]

Renders pages of the first MMLongBench-Doc PDFs that have evidence pages, then measures:
- ``ragllava`` (Qwen/Qwen2.5-VL-7B-Instruct): pages/s of the Yes/No read-out, batched;
- ``mm-r5`` (i2vec/MM-R5): pages/s of one listwise call over the same pages (paper settings:
  temperature 0.3, up to 8192 new tokens), and how often the evidence page is ranked first;
- ``qwen-vl`` generator (Qwen/Qwen2.5-VL-7B-Instruct): new tokens/s answering from 2 pages.
The ratio mm-r5 / ragllava pages/s compares the two rerankers in the same run. Prints a table and
writes benchmarks/results/gpu_check_vlm.json. ``run()`` is what benchmarks/gpu_check.py calls.
Needs a CUDA GPU and the weights in the local Hugging Face cache; without them it says so.
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
DATA = Path(os.environ.get("MMRAG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "mmlongbench-doc-subset"
OUT = ROOT / "benchmarks" / "results" / "gpu_check_vlm.json"
QWEN = "Qwen/Qwen2.5-VL-7B-Instruct"
MMR5 = "i2vec/MM-R5"
PIXELS = {"min_pixels": 256 * 28 * 28, "max_pixels": 768 * 28 * 28}


def _questions(n: int) -> list[dict]:
    rows = [json.loads(line) for line in (DATA / "questions.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("evidence_pages_1based")][:n]


def _pages(q: dict, n: int) -> list[tuple[int, object]]:
    """The evidence page plus its neighbours, ``n`` pages of the question's PDF, rendered."""
    from mmrag.ingest.render import render_page

    pdf = DATA / "documents" / q["doc_id"]
    ev = q["evidence_pages_1based"][0]
    first = max(1, min(ev - n // 2, q["num_pages"] - n + 1))
    numbers = list(range(first, min(first + n, q["num_pages"] + 1)))
    return [(p, render_page(str(pdf), p, dpi=144)) for p in numbers]


def _hit(q: dict, page: int, score: float) -> "Hit":
    """A search hit for one PDF page with MuPDF's text blocks (the generator renders the image)."""
    import pymupdf

    from mmrag.types import Block, Hit

    pdf = DATA / "documents" / q["doc_id"]
    with pymupdf.open(pdf) as doc:
        raw = doc[page - 1].get_text("blocks")
    blocks = [Block(b[4], (b[0], b[1], b[2], b[3])) for b in raw if b[4].strip()]
    return Hit(q["doc_id"], str(pdf), page, score, text="\n".join(b.text for b in blocks), blocks=blocks)


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run(pages: int = 8, questions: int = 3, qwen: str = QWEN, mm_r5: str = MMR5, allow_cpu: bool = False,
        pixels: dict | None = None, mm_r5_max_new_tokens: int = 8192) -> dict:
    """Measure the three VLM components on a GPU; returns the results (``main`` writes them).

    ``allow_cpu`` with small stand-in models (``qwen``, ``mm_r5``) smoke-tests this script where
    there is no GPU; such figures are not GPU figures."""
    import torch
    import transformers

    from mmrag.generate.qwen_vl import QwenVLGenerator
    from mmrag.rerankers import load
    from mmrag.types import Candidate

    env = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "cpu_count": os.cpu_count(), "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    pixels = pixels or PIXELS
    if not torch.cuda.is_available() and not allow_cpu:
        result = {"status": "skipped: no CUDA GPU on this machine", "env": env}
        print(result["status"])
        return result
    qs = _questions(questions)
    ragllava = load("ragllava", model=qwen, batch_size=4, **pixels)
    mmr5 = load("mm-r5", model=mm_r5, max_new_tokens=mm_r5_max_new_tokens, **pixels)
    gen = QwenVLGenerator(model=qwen, max_new_tokens=256, **pixels)
    rows = []
    for q in qs:
        rendered = _pages(q, pages)
        cands = [Candidate(f"p{p}", "", image=img) for p, img in rendered]
        evidence = {f"p{p}" for p in q["evidence_pages_1based"]}
        _sync(); t = time.perf_counter()
        ranked = ragllava.rerank(q["question"], cands)
        _sync(); t_rag = time.perf_counter() - t
        t = time.perf_counter()
        listwise = mmr5.rerank(q["question"], cands)
        _sync(); t_mmr5 = time.perf_counter() - t
        out_tokens = len(mmr5.backend.tokenizer.encode(mmr5.last_output))
        hits = [_hit(q, int(s.id[1:]), s.score) for s in ranked[:2]]
        t = time.perf_counter()
        answer = gen.answer(q["question"], hits)
        _sync(); t_gen = time.perf_counter() - t
        gen_tokens = len(gen.backend.tokenizer.encode(gen.last_output))
        rows.append({"qid": q["qid"], "pages": len(cands), "ragllava_s": t_rag, "mmr5_s": t_mmr5,
                     "mmr5_new_tokens": out_tokens, "gen_s": t_gen, "gen_new_tokens": gen_tokens,
                     "ragllava_top1_evidence": ranked[0].id in evidence,
                     "mmr5_top1_evidence": listwise[0].id in evidence,
                     "answer": answer.text[:200], "gold": q["answer"]})
    n_pages = sum(r["pages"] for r in rows)
    summary = {
        "ragllava_pages_per_s": n_pages / sum(r["ragllava_s"] for r in rows),
        "mmr5_pages_per_s": n_pages / sum(r["mmr5_s"] for r in rows),
        "qwen_vl_tokens_per_s": sum(r["gen_new_tokens"] for r in rows) / sum(r["gen_s"] for r in rows),
        "mmr5_tokens_per_s": sum(r["mmr5_new_tokens"] for r in rows) / sum(r["mmr5_s"] for r in rows),
    }
    summary["mmr5_over_ragllava_pages_per_s"] = summary["mmr5_pages_per_s"] / summary["ragllava_pages_per_s"]
    result = {"status": "ok", "summary": summary, "rows": rows, "env": env,
              "settings": {"pages_per_question": pages, "questions": len(rows), "dpi": 144, **pixels,
                           "ragllava": {"model": qwen, "batch_size": 4}, "mm_r5": {"model": mm_r5,
                           "temperature": 0.3, "max_new_tokens": mm_r5_max_new_tokens}, "qwen_vl": {"model": qwen,
                           "max_new_tokens": 256, "pages": 2}}}
    print(f"{'component':<28}{'figure':>12}")
    for key, value in summary.items():
        print(f"{key:<28}{value:>12.3f}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=8)
    ap.add_argument("--questions", type=int, default=3)
    ap.add_argument("--qwen", default=QWEN, help="Qwen2.5-VL checkpoint for ragllava and the generator")
    ap.add_argument("--mm-r5", default=MMR5, help="MM-R5 checkpoint")
    ap.add_argument("--allow-cpu", action="store_true", help="smoke test without a GPU (not GPU figures)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    small = {"min_pixels": 28 * 28, "max_pixels": 28 * 28 * 16} if args.allow_cpu else None
    result = run(args.pages, args.questions, args.qwen, args.mm_r5, args.allow_cpu, small,
                 64 if args.allow_cpu else 8192)
    if result["status"] != "ok" or args.allow_cpu:
        return  # nothing measured on a GPU: keep the last real results
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
