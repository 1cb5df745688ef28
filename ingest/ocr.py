"""OCR with rapidocr (PP-OCRv6 ONNX models ship in the wheel): page pixels → text lines in points."""

from __future__ import annotations

import os
import threading
from typing import Any

from mmrag.errors import MissingDependency
from mmrag.types import BBox

_ENGINE: Any = None
_LOCK = threading.Lock()
MAX_SIDE = 2000  # rapidocr downsizes larger images anyway; rendering more is wasted work


def engine() -> Any:
    """One rapidocr engine per process, built on first use (loading the models takes ~1 s)."""
    global _ENGINE
    with _LOCK:
        if _ENGINE is None:
            try:
                from rapidocr import RapidOCR
            except ImportError:
                raise MissingDependency(
                    "OCR needs rapidocr and onnxruntime: pip install 'mmrag[ocr]' (or use --ocr never)"
                ) from None
            threads = int(os.environ.get("MMRAG_OCR_THREADS", "0")) or -1
            _ENGINE = RapidOCR(params={
                "Global.log_level": "error",
                # detect on at most 1280 px (recognition still reads the full-resolution crops)
                "Det.limit_type": "max",
                "Det.limit_side_len": 1280,
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            })
        return _ENGINE


def available() -> bool:
    """Whether rapidocr can be imported (``ocr: auto`` quietly skips OCR when it cannot)."""
    import importlib.util

    return importlib.util.find_spec("rapidocr") is not None and importlib.util.find_spec("onnxruntime") is not None


def ocr_scale(width: float, height: float, dpi: int) -> float:
    """Pixels per point for OCR rendering: ``dpi`` unless the long side would pass MAX_SIDE."""
    scale = dpi / 72.0
    longest = max(width, height, 1.0)
    return min(scale, MAX_SIDE / longest)


def ocr_lines(image: Any, scale: float, min_score: float = 0.5) -> list[tuple[str, BBox, float]]:
    """Recognised lines of a rendered page: (text, bbox in page points, confidence).

    ``scale`` is pixels per point of ``image``; rapidocr's quadrilaterals become their
    axis-aligned bounding boxes divided by it.
    """
    result = engine()(image)
    txts = getattr(result, "txts", None) or ()
    boxes = getattr(result, "boxes", None)
    scores = getattr(result, "scores", None) or ()
    out: list[tuple[str, BBox, float]] = []
    if boxes is None:
        return out
    for text, quad, score in zip(txts, boxes, scores):
        text = (text or "").strip()
        if not text or score < min_score:
            continue
        xs = [float(p[0]) for p in quad]
        ys = [float(p[1]) for p in quad]
        out.append((text, (min(xs) / scale, min(ys) / scale, max(xs) / scale, max(ys) / scale), float(score)))
    return out
