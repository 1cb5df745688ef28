"""One short GPU run for the multimodal stage: encoder pages/s, faiss-gpu vs CPU, MaxSim, a timed fine-tune.

    python benchmarks/gpu_check.py                # on a CUDA machine, real checkpoints (configs/gpu.yaml)
    python benchmarks/gpu_check.py --dry-run      # CPU, tiny random models: checks the script itself

Sections (each one's figures go in the JSON under its name; a failing section is recorded and
the run goes on):
- ``encoders``: pages/s of every page encoder (clip ViT-L-14, siglip, colqwen2, colpali, dse,
  mm-embed) in bf16 at several batch sizes, with peak GPU memory per batch size;
- ``faiss``: flat inner-product search, faiss-gpu vs faiss-cpu on the same vectors (ratio);
- ``maxsim``: multi-vector store MaxSim queries/s over ColQwen2-sized pages (memory-mapped);
- ``finetune``: `mmrag.train` on the synthetic corpus for a fixed time budget (steps/s);
- ``train_llm``: the LLM training recipes (FIRST in bf16 per batch size, Rank-R1 GRPO with vLLM
  rollouts when vllm is installed) on ``MMRAG_TRAIN_LLM`` (default Qwen2.5-0.5B-Instruct);
- ``vlm``: the vision-reranker engineer's ``benchmarks/gpu_check_vlm.run()`` (MM-R5, RagLLaVA,
  Qwen2.5-VL tokens/s); add more by appending to ``SECTIONS``.
Writes benchmarks/results/gpu_check.json (dry runs write gpu_check_dryrun.json: not GPU figures).
Needs the checkpoints in the local Hugging Face cache (the GPU machines here reach no hub).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("MMRAG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "mmlongbench-doc-subset"

# Real checkpoints per page encoder (fields of configs/gpu.yaml override these).
REAL = {
    "clip": {"model": "ViT-L-14", "pretrained": "openai"},
    "siglip": {"model": "google/siglip-so400m-patch14-384"},
    "colqwen2": {"model": "vidore/colqwen2-v1.0-hf"},
    "colpali": {"model": "vidore/colpali-v1.3-hf"},
    "dse": {"model": "MrLight/dse-qwen2-2b-mrl-v1", "dimension": 1536, "page_size": 680},
    "mm-embed": {"model": "nvidia/MM-Embed", "backend": "nvidia"},
}


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _pages(n: int, dry: bool) -> list:
    """``n`` real PDF pages (MMLongBench-Doc) with their images rendered, or drawn ones if absent."""
    from PIL import Image, ImageDraw

    from mmrag.types import Page

    pdfs = sorted((DATA / "documents").glob("*.pdf")) if DATA.exists() else []
    out = []
    if pdfs and not dry:
        import pymupdf

        from mmrag.ingest.render import render_page

        for pdf in pdfs:
            with pymupdf.open(pdf) as doc:
                count = doc.page_count
                texts = [doc[i].get_text() for i in range(min(count, n - len(out)))]
            for i, text in enumerate(texts):
                out.append(Page(pdf.stem, i + 1, 612, 792, text=text, source_path=str(pdf),
                                _image=render_page(str(pdf), i + 1, dpi=144)))
            if len(out) >= n:
                return out
    for i in range(n - len(out)):
        im = Image.new("RGB", (612, 792), "white")
        ImageDraw.Draw(im).text((40, 40 + 10 * (i % 50)), f"synthetic page {i} revenue table", fill="black")
        out.append(Page("synthetic", i + 1, 612, 792, text=f"synthetic page {i}", _image=im))
    return out


# ----------------------------------------------------------------------------- encoders
def _tiny_encoders(tmp: Path) -> dict[str, dict]:
    """Tiny random stand-ins of each encoder (dry run); same loading code as the real ones."""
    from mmrag.bundled import smollm2_hf_dir
    from tests.tiny import (build_qwen_vl_tokenizer, tiny_colpali, tiny_colqwen2, tiny_hf_clip, tiny_open_clip_config,
                            tiny_qwen2_vl)

    arch = tiny_open_clip_config(tmp / "arch")
    tok = build_qwen_vl_tokenizer(smollm2_hf_dir(), tmp / "tok")
    qwen = tiny_qwen2_vl(tok, tmp / "qwen2vl")
    small = {"min_pixels": 4 * 28 * 28, "max_pixels": 64 * 28 * 28}
    return {
        "clip": {"model": "mmrag-tiny-clip", "pretrained": None, "model_config": str(arch)},
        "siglip": {"model": str(tiny_hf_clip(tmp / "siglip", "siglip"))},
        "colqwen2": {"model": str(tiny_colqwen2(tok, tmp / "colqwen2"))},
        "colpali": {"model": str(tiny_colpali(smollm2_hf_dir(), tmp / "colpali"))},
        "dse": {"model": str(qwen), "page_size": 224, **small},
        "mm-embed": {"model": str(qwen), **small},
    }


def section_encoders(args: argparse.Namespace, ctx: dict) -> dict:
    import torch

    from mmrag import encoders

    pages = _pages(args.pages, args.dry_run)
    specs = ctx["tiny"] if args.dry_run else {**REAL, **ctx["fields"]}
    dtype = "float32" if args.dry_run else "bfloat16"
    out: dict = {"pages": len(pages), "dtype": dtype, "results": {}}
    for name in args.encoders:
        if name not in specs:
            out["results"][name] = {"status": "skipped", "reason": "no model for it in this mode"}
            continue
        row: dict = {"options": specs[name], "batch": {}}
        try:
            enc = encoders.load(name, **{**specs[name], "dtype": dtype, "device": ctx["device"], "progress": False})
            enc.encode_page(pages[:1])  # warm-up: kernels, caches
            for bs in args.batch_sizes:
                enc.batch_size = bs
                if ctx["device"] == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                _sync()
                t0 = time.perf_counter()
                enc.encode_page(pages)
                _sync()
                sec = time.perf_counter() - t0
                row["batch"][bs] = {"pages_per_s": len(pages) / sec, "seconds": sec,
                                    "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30
                                    if ctx["device"] == "cuda" else None}
            t0 = time.perf_counter()
            enc.encode_text(["what was the net revenue in 2023?"] * 32, is_query=True)
            _sync()
            row["queries_per_s"] = 32 / (time.perf_counter() - t0)
            row["identity"] = enc.identity
            row["status"] = "ok"
            del enc
            if ctx["device"] == "cuda":
                torch.cuda.empty_cache()
        except Exception as e:  # a missing checkpoint or OOM must not stop the other encoders
            row.update(status="error", error=f"{type(e).__name__}: {e}")
        out["results"][name] = row
    return out


# ----------------------------------------------------------------------------- faiss
def section_faiss(args: argparse.Namespace, ctx: dict) -> dict:
    import faiss

    n, dim, nq, k = (20_000, 128, 100, 10) if args.dry_run else (1_000_000, 768, 1_000, 100)
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((n, dim), dtype=np.float32)
    xq = rng.standard_normal((nq, dim), dtype=np.float32)
    cpu = faiss.IndexFlatIP(dim)
    cpu.add(xb)
    t0 = time.perf_counter()
    d_cpu, i_cpu = cpu.search(xq, k)
    cpu_s = time.perf_counter() - t0
    out = {"vectors": n, "dim": dim, "queries": nq, "k": k, "cpu_qps": nq / cpu_s,
           "faiss_gpus": faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0}
    if out["faiss_gpus"] > 0:
        gpu = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, cpu)
        gpu.search(xq[:8], k)  # warm-up
        t0 = time.perf_counter()
        d_gpu, i_gpu = gpu.search(xq, k)
        gpu_s = time.perf_counter() - t0
        out.update(gpu_qps=nq / gpu_s, gpu_over_cpu=cpu_s / gpu_s,
                   top1_agreement=float(np.mean(i_gpu[:, 0] == i_cpu[:, 0])))
    else:
        out["gpu"] = "faiss has no GPU here (pip install 'mmrag[gpu]' → faiss-gpu-cu12)"
    return out


# ----------------------------------------------------------------------------- maxsim
def section_maxsim(args: argparse.Namespace, ctx: dict) -> dict:
    from mmrag.indexes.multivector import MultiVectorStore

    n_pages, tokens, dim = (200, 64, 32) if args.dry_run else (10_000, 768, 128)
    rng = np.random.default_rng(0)
    store = MultiVectorStore(dim, "float16")
    for start in range(0, n_pages, 1000):
        batch = range(start, min(start + 1000, n_pages))
        mats = [rng.standard_normal((tokens, dim), dtype=np.float32) for _ in batch]
        store.add(list(batch), [m / np.linalg.norm(m, axis=1, keepdims=True) for m in mats])
    with tempfile.TemporaryDirectory() as tmp:
        store.save(Path(tmp) / "mv")
        store = MultiVectorStore.load(Path(tmp) / "mv")
        q = rng.standard_normal((20, dim), dtype=np.float32)
        t0 = time.perf_counter()
        reps = 3
        for _ in range(reps):
            store.search(q, 10)
        sec = (time.perf_counter() - t0) / reps
    return {"pages": n_pages, "tokens_per_page": tokens, "dim": dim, "storage": "float16 memmap",
            "full_scan_ms": sec * 1000, "pages_scored_per_s": n_pages / sec}


# ----------------------------------------------------------------------------- finetune
def section_finetune(args: argparse.Namespace, ctx: dict) -> dict:
    """Fine-tune the benchmark's tiny CLIP for ``--train-seconds`` on the device; steps/s and R@1."""
    import torch

    from benchmarks.finetune import ARCH, evaluate
    from mmrag.encoders.clip import OpenClipEncoder
    from mmrag.train.loop import TrainConfig, train_encoder
    from mmrag.train.negatives import NegativeConfig
    from mmrag.train.synthetic import make_corpus

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "mmrag-gpu-clip.json").write_text(json.dumps(ARCH))
        torch.manual_seed(0)
        enc = OpenClipEncoder("mmrag-gpu-clip", pretrained=None, model_config=str(Path(tmp) / "mmrag-gpu-clip.json"),
                              device=ctx["device"], dtype="float32", progress=False)
    train, test = make_corpus(seed=0, size=ARCH["vision_cfg"]["image_size"])
    if args.dry_run:  # one epoch is the unit of the time budget: keep it small on CPU
        train.pairs = train.pairs[:64]
    before = evaluate(enc, test)
    cfg = TrainConfig(epochs=1, batch_size=64, lr=1e-3, temperature=0.07, freeze_batchnorm=False,
                      negatives=NegativeConfig(kind="modality"))
    t0, epochs, steps = time.perf_counter(), 0, 0
    while time.perf_counter() - t0 < args.train_seconds:
        cfg.seed = epochs
        train_encoder(enc, train.items, train.pairs, cfg, progress=False)
        epochs += 1
        steps += (len(train.pairs) + cfg.batch_size - 1) // cfg.batch_size
    sec = time.perf_counter() - t0
    return {"budget_s": args.train_seconds, "seconds": sec, "epochs": epochs, "steps": steps,
            "steps_per_s": steps / sec, "before": before, "after": evaluate(enc, test)}


# ----------------------------------------------------------------------------- vlm (other stage)
def section_vlm(args: argparse.Namespace, ctx: dict) -> dict:
    if args.dry_run:
        return {"status": "skipped", "reason": "dry run: smoke-test it with benchmarks/gpu_check_vlm.py --allow-cpu"}
    from benchmarks import gpu_check_vlm

    return gpu_check_vlm.run()


# ----------------------------------------------------------------------------- train_llm (issue 14)
TRAIN_LLM = "Qwen/Qwen2.5-0.5B-Instruct"  # any causal LM in the local cache; MM-R5 needs a Qwen2.5-VL


def section_train_llm(args: argparse.Namespace, ctx: dict) -> dict:
    """The LLM training recipes in bf16 on the GPU: FIRST steps/s and peak memory per batch size, then a
    few GRPO steps of Rank-R1 (vLLM rollouts when vllm is installed, else transformers generate)."""
    import importlib.util
    import random

    import torch

    from mmrag.train import first, rank_r1
    from mmrag.train.ranking_types import RankingExample

    if args.dry_run:
        from tests.train_tasks import ranking_examples, tiny_ranking_lm

        model = str(tiny_ranking_lm(Path(tempfile.mkdtemp()), 0))
        examples = ranking_examples(64, 0)
    else:
        model = os.environ.get("MMRAG_TRAIN_LLM", TRAIN_LLM)
        rng = random.Random(0)
        words = "the report states revenue grew while costs fell across every region in the year".split()
        examples = [RankingExample(f"q{q}", "how did revenue change", [
            (f"q{q}d{i}", " ".join(rng.choice(words) for _ in range(120))) for i in range(20)], {f"q{q}d0": 1})
            for q in range(64)]
    out: dict = {"model": model, "bf16": ctx["device"] == "cuda"}
    for bs in (args.batch_sizes if args.dry_run else [1, 4, 8]):
        if ctx["device"] == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            s = first.train(examples, Path(tmp), {"model": model, "max_steps": 4, "batch_size": bs, "lr": 1e-5,
                                                  "progress": False, "window": 4 if args.dry_run else 20})
            sec = time.perf_counter() - t0
        out[f"first_bs{bs}"] = {"seconds": sec, "steps_per_s": 4 / sec, "loss": s["loss"],
                                "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if ctx["device"] == "cuda" else None}
    vllm = ctx["device"] == "cuda" and importlib.util.find_spec("vllm") is not None
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        s = rank_r1.train(examples, Path(tmp), {
            "model": model, "max_steps": 3, "batch_size": 2, "num_generations": 8, "lora_r": 16, "progress": False,
            "max_completion_length": 16 if args.dry_run else 256, "children": 3 if args.dry_run else 19,
            "use_vllm": vllm})
        out["rank_r1_grpo"] = {"seconds": time.perf_counter() - t0, "vllm_rollouts": vllm, "reward": s["reward"]}
    return out


SECTIONS: dict[str, Callable[[argparse.Namespace, dict], dict]] = {
    "encoders": section_encoders, "faiss": section_faiss, "maxsim": section_maxsim,
    "finetune": section_finetune, "vlm": section_vlm, "train_llm": section_train_llm,
}


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in ("torch", "transformers", "open_clip_torch", "faiss-cpu", "faiss-gpu-cu12", "peft", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _print(results: dict) -> None:
    enc = results["sections"].get("encoders", {})
    if enc.get("results"):
        sizes = sorted({int(b) for r in enc["results"].values() for b in r.get("batch", {})})
        print(f"\npages/s ({enc.get('pages')} pages, {enc.get('dtype')}, {results['device']})")
        print(f"{'encoder':<12}" + "".join(f"{'bs=' + str(b):>12}" for b in sizes) + f"{'queries/s':>12}")
        for name, r in enc["results"].items():
            if r.get("status") != "ok":
                print(f"{name:<12}  {r.get('status')}: {r.get('error') or r.get('reason')}")
                continue
            cells = "".join(f"{r['batch'][b]['pages_per_s']:>12.2f}" for b in sizes)
            print(f"{name:<12}{cells}{r['queries_per_s']:>12.1f}")
    for name, sec in results["sections"].items():
        if name != "encoders":
            brief = {k: v for k, v in sec.items() if not isinstance(v, (dict, list))}
            print(f"{name}: {json.dumps(brief, default=str)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU + tiny random models: tests the script, not the GPU")
    ap.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS))
    ap.add_argument("--encoders", nargs="+", default=list(REAL))
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--pages", type=int, default=32)
    ap.add_argument("--train-seconds", type=float, default=60.0)
    ap.add_argument("--config", default=str(ROOT / "configs" / "gpu.yaml"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from mmrag.config import load_config

    device = "cuda" if torch.cuda.is_available() and not args.dry_run else "cpu"
    if device == "cpu" and not args.dry_run:
        sys.exit("no CUDA GPU here: run on a GPU machine, or use --dry-run to check the script on CPU")
    if args.dry_run:
        args.pages, args.batch_sizes, args.train_seconds = min(args.pages, 4), [1, 2], min(args.train_seconds, 5.0)
    ctx: dict[str, Any] = {"device": device, "fields": {}}
    for f in load_config(args.config).fields:
        if f.input == "pages":
            ctx["fields"][f.encoder] = {k: v for k, v in f.options.items() if k not in ("dtype", "device")}
    tmp = tempfile.TemporaryDirectory()
    if args.dry_run and "encoders" in args.sections:
        ctx["tiny"] = _tiny_encoders(Path(tmp.name))
    results: dict = {"benchmark": "gpu_check", "dry_run": args.dry_run, "device": device,
                     "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
                     "settings": {k: v for k, v in vars(args).items()}, "sections": {},
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                     "versions": _versions()}
    for name in args.sections:
        t0 = time.perf_counter()
        try:
            results["sections"][name] = SECTIONS[name](args, ctx)
        except Exception as e:
            results["sections"][name] = {"status": "error", "error": f"{type(e).__name__}: {e}",
                                         "traceback": traceback.format_exc(limit=3)}
        results["sections"][name]["section_seconds"] = time.perf_counter() - t0
    tmp.cleanup()
    _print(results)
    path = ROOT / "benchmarks" / "results" / ("gpu_check_dryrun.json" if args.dry_run else "gpu_check.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {path}" + ("  (dry run on CPU with tiny models: NOT GPU figures)" if args.dry_run else ""))


if __name__ == "__main__":
    main()
