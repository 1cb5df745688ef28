"""``mmrag eval pages``: which page answers the question? Page-level recall on real PDFs.

Dataset layout (MMLongBench-Doc / MMDocIR style): ``documents/*.pdf``, ``questions.jsonl``
(qid, doc_id = the PDF's file name, question, answer) and ``qrels_pages.tsv`` (query-id,
``<file name>#<1-based page>``, grade). The PDFs are indexed with the given preset through the
same ``RAG`` API the CLI uses; ``--scope document`` ranks only the pages of the question's own
document (as MMDocIR and MMLongBench-Doc do), ``corpus`` ranks every page. The preset's
reranker (if any) reorders the first stage; ``--rerank NAME`` picks another, ``--rerank none``
measures the first stage alone. Metrics come from
ir-measures: macro Recall@k = the mean over questions of the share of its evidence pages in the
top k; hit@k = Success@k. With ``answer`` the configured generator answers from the top
``ask.contexts`` pages and the answer-string recall on answerable questions is reported.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from mmrag.config import Config, load_config
from mmrag.errors import ConfigError, IndexNotFound
from mmrag.eval.trec import evaluate, read_qrels, write_run

MEASURES = {"R@1": "R@1", "R@3": "R@3", "R@5": "R@5", "hit@1": "Success@1", "hit@5": "Success@5"}
UNANSWERABLE = "not answerable"
DEPTH = 10  # pages ranked per question (R@5 needs 5; the run keeps a few more for inspection)


def read_questions(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _norm(text: str) -> str:
    """Lower case, thousands separators dropped, punctuation to spaces except decimal points; % is a word."""
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text.lower()).replace("%", " % ")
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)
    return " " + " ".join(re.sub(r"[^0-9a-z.%]+", " ", text).split()) + " "


def answer_items(answer: str) -> list[str]:
    """The gold answer as strings to look for: the items of a list answer, else the answer itself."""
    answer = str(answer).strip()
    if answer.startswith("[") and answer.endswith("]"):
        try:
            items = ast.literal_eval(answer)
            if isinstance(items, (list, tuple)) and items:
                return [str(i) for i in items]
        except (ValueError, SyntaxError):
            pass
    return [answer]


def answer_recall(gold: str, generated: str) -> float:
    """Share of the gold answer's items that appear (normalised, on word boundaries) in the answer."""
    items = [_norm(i) for i in answer_items(gold)]
    items = [i for i in items if i.strip()]
    if not items:
        return 0.0
    text = _norm(generated)
    return sum(i in text for i in items) / len(items)


def index_key(documents: Path, cfg: Config) -> str:
    """Hash of the PDFs (names, sizes) and every setting that changes what the index holds."""
    files = sorted((p.name, p.stat().st_size) for p in documents.iterdir() if p.is_file())
    parts = [str(documents.resolve()), files, cfg.to_dict()["ingest"], [vars(f) for f in cfg.fields],
             {k: v for k, v in cfg.to_dict()["index"].items()
              if k in ("sparse", "bm25_k1", "bm25_b", "dense", "hnsw_m", "ivf_nlist", "pq_m", "store_images")}]
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:16]


def evaluate_pages(dataset: str | Path, *, config: str | Path | Config | None = None, scope: str = "document",
                   rerank: str | None = None, answer: bool = False, index_dir: str | Path | None = None,
                   limit: int | None = None, out: str | Path | None = None, progress: bool = True,
                   channels: list[str] | None = None, questions: list[str] | None = None,
                   build: bool = True) -> dict:
    """Index the dataset's PDFs (or reuse ``index_dir``), rank pages per question, score them.

    ``channels`` restricts first-stage search to some fields and/or "bm25" (calibration);
    ``questions`` restricts the evaluation to these qids (e.g. one half of the documents);
    ``build=False`` searches ``index_dir`` as it is (questions on documents it lacks score 0).
    Writes ``metrics.json``, ``run.trec``, ``per_query.json`` (and ``answers.jsonl``) to ``out``.
    """
    from tqdm import tqdm

    from mmrag.api import RAG
    from mmrag.bundled import cache_dir

    if scope not in ("document", "corpus"):
        raise ConfigError(f"scope must be document or corpus, got {scope!r}")
    dataset = Path(dataset)
    documents, questions_path, qrels_path = dataset / "documents", dataset / "questions.jsonl", dataset / "qrels_pages.tsv"
    for p in (documents, questions_path, qrels_path):
        if not p.exists():
            raise IndexNotFound(f"{p} is missing: --dataset must hold documents/, questions.jsonl and qrels_pages.tsv")
    cfg = config if isinstance(config, Config) else load_config(config)
    qrels = read_qrels(qrels_path)
    items = [q for q in read_questions(questions_path) if questions is None or q["qid"] in set(questions)]
    items = items[:limit] if limit else items
    out_dir = Path(out) if out else Path(tempfile.mkdtemp(prefix="mmrag-eval-pages-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    index_dir = Path(index_dir) if index_dir else cache_dir() / "eval-index" / f"{dataset.name}-{index_key(documents, cfg)}"

    rag = RAG.from_config(cfg, index=index_dir)
    t_index = time.perf_counter()
    report = rag.index([documents], progress=progress) if build else {"documents": []}
    index_seconds = time.perf_counter() - t_index
    failed = [d for d in report["documents"] if d.get("status") == "error"]
    doc_ids = {Path(d["path"]).name: d["doc_id"] for d in rag.documents()}
    name_of = {v: k for k, v in doc_ids.items()}
    reranker = _load_reranker(rerank)
    generator = _load_generator(cfg) if answer else None

    run: dict[str, dict[str, float]] = {}
    answers: list[dict] = []
    t0 = time.perf_counter()
    for q in tqdm(items, desc=f"pages ({scope})", unit="question", disable=not progress):
        if scope == "document" and q["doc_id"] not in doc_ids:
            run[q["qid"]] = {}  # its document failed to index: counts as zero
            continue
        filters = {"doc_id": doc_ids[q["doc_id"]]} if scope == "document" else None
        if channels is None:
            hits = rag.search(q["question"], k=DEPTH, filters=filters, rerank=reranker)  # None: the config's
        else:
            hits = rag.reader.search(q["question"], DEPTH, filters, channels)
        run[q["qid"]] = {f"{name_of.get(h.doc_id, h.doc_id)}#{h.page}": float(DEPTH - i) for i, h in enumerate(hits)}
        if generator is not None:
            ans = generator.answer(q["question"], hits[: cfg.ask.contexts])
            answers.append(_answer_record(q, ans))
    seconds = time.perf_counter() - t0

    judged = {qid: qrels[qid] for qid in run if qid in qrels}
    if not judged:
        raise IndexNotFound("none of the evaluated questions has page qrels: check the dataset or --limit")
    scores = evaluate(judged, run, list(MEASURES.values()), per_query=True)
    metrics: dict[str, Any] = {name: scores[m] for name, m in MEASURES.items()}
    metrics.update(questions=len(judged), seconds=round(seconds, 2),
                   ms_per_question=round(1000 * seconds / max(1, len(run)), 1),
                   index_seconds=round(index_seconds, 2), scope=scope,
                   rerank=rerank if rerank is not None else (cfg.reranker.name if cfg.reranker else None),
                   documents_failed=len(failed))
    if answers:
        metrics.update(answer_summary(answers))
    write_run(run, out_dir / "run.trec", tag=f"mmrag-pages-{scope}")
    (out_dir / "per_query.json").write_text(json.dumps(scores["per_query"], indent=1))
    if answers:
        with open(out_dir / "answers.jsonl", "w", encoding="utf-8") as f:
            for a in answers:
                f.write(json.dumps(a, ensure_ascii=False) + "\n")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _load_reranker(name: str | None) -> Any:
    """None: the config's reranker (if any); "none": no reranking; else a registered name."""
    if name is None:
        return None
    if name.lower() in ("none", "off", "false"):
        return False
    from mmrag import rerankers

    return rerankers.load(name)  # once, not per question


def _load_generator(cfg: Config) -> Any:
    from mmrag import generate

    return generate.load(cfg.generator.name, **cfg.generator.options)


def _answer_record(q: dict, ans: Any) -> dict:
    gold = str(q.get("answer", ""))
    answerable = gold.strip().lower() != UNANSWERABLE
    return {"qid": q["qid"], "question": q["question"], "gold": gold, "answerable_gold": answerable,
            "answer": ans.text, "abstained": not ans.answerable,
            "recall": answer_recall(gold, ans.text) if answerable else None,
            "citations": [c.to_dict() for c in ans.citations]}


def answer_summary(records: list[dict]) -> dict:
    """Answer-string recall on answerable questions; how often the generator abstains on each kind."""
    ok = [r for r in records if r["answerable_gold"]]
    no = [r for r in records if not r["answerable_gold"]]
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    return {
        "answer_recall": mean([r["recall"] for r in ok]),
        "answer_exact_hits": sum(r["recall"] == 1.0 for r in ok),
        "answerable_questions": len(ok),
        "abstain_rate_answerable": mean([float(r["abstained"]) for r in ok]),
        "abstain_rate_unanswerable": mean([float(r["abstained"]) for r in no]),
        "unanswerable_questions": len(no),
    }
