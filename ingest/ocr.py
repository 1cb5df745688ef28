"""OCR with rapidocr (PP-OCRv6 ONNX models ship in the wheel): page pixels → text lines in points."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from mmrag.errors import MissingDependency
from mmrag.types import BBox

_ENGINES: dict[str, Any] = {}
_LOCK = threading.Lock()
MAX_SIDE = 2000  # rapidocr downsizes larger images anyway; rendering more is wasted work
# Orientation is decided per page from its widest lines: rapidocr's per-line angle classifier
# took 12-18% of OCR time on the 240 scanned MMLongBench pages, and a scanned page is turned
# as a whole. ORIENTATION_LINES long lines are classified; the page is read again turned by
# 180 degrees when most of them say so.
ORIENTATION_LINES = 6
UPSIDE_DOWN_SCORE = 0.9  # rapidocr's own threshold for turning a line


def engine(options: dict | None = None) -> Any:
    """One rapidocr engine per process and ``options`` (rapidocr config keys over ours), built on
    first use (loading the models takes ~1 s)."""
    key = json.dumps(options or {}, sort_keys=True)
    with _LOCK:
        if key not in _ENGINES:
            try:
                from rapidocr import RapidOCR
            except ImportError:
                raise MissingDependency(
                    "OCR needs rapidocr and onnxruntime: pip install 'mmrag[ocr]' (or use --ocr never)"
                ) from None
            threads = int(os.environ.get("MMRAG_OCR_THREADS", "0")) or -1
            _ENGINES[key] = RapidOCR(params={
                "Global.log_level": "error",
                "Global.use_cls": False,  # orientation per page: see upside_down
                # detect on at most 1280 px (recognition still reads the full-resolution crops)
                "Det.limit_type": "max",
                "Det.limit_side_len": 1280,
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                # rapidocr turns ONNX Runtime's memory arena off; reusing the buffers made OCR of
                # scanned MMLongBench pages 15% faster (detection 22%), with no peak-memory change seen
                "EngineConfig.onnxruntime.enable_cpu_mem_arena": True,
                **(options or {}),
            })
        return _ENGINES[key]


def available() -> bool:
    """Whether rapidocr can be imported (``ocr: auto`` quietly skips OCR when it cannot)."""
    import importlib.util

    return importlib.util.find_spec("rapidocr") is not None and importlib.util.find_spec("onnxruntime") is not None


def ocr_scale(width: float, height: float, dpi: int) -> float:
    """Pixels per point for OCR rendering: ``dpi`` unless the long side would pass MAX_SIDE."""
    scale = dpi / 72.0
    longest = max(width, height, 1.0)
    return min(scale, MAX_SIDE / longest)


def ocr_lines(image: Any, scale: float, min_score: float = 0.5,
              options: dict | None = None) -> list[tuple[str, BBox, float]]:
    """Recognised lines of a rendered page: (text, bbox in page points, confidence).

    ``scale`` is pixels per point of ``image``; rapidocr's quadrilaterals become their
    axis-aligned bounding boxes divided by it. A page whose long lines read upside down is read
    again turned by 180 degrees, and its boxes are turned back (unless ``options`` switch
    rapidocr's per-line classifier back on).
    """
    import numpy as np

    if hasattr(image, "convert"):  # a PIL image: rapidocr takes arrays as BGR (and converts PIL itself)
        pixels = np.ascontiguousarray(np.asarray(image.convert("RGB"))[..., ::-1])
    else:
        pixels = np.asarray(image)
    eng = engine(options)
    result = eng(pixels)
    turned = False
    if not eng.use_cls and upside_down(eng, pixels, getattr(result, "boxes", None)):
        result = eng(np.ascontiguousarray(pixels[::-1, ::-1]))
        turned = True
    txts = getattr(result, "txts", None) or ()
    boxes = getattr(result, "boxes", None)
    scores = getattr(result, "scores", None) or ()
    out: list[tuple[str, BBox, float]] = []
    if boxes is None:
        return out
    height, width = pixels.shape[:2]
    for text, quad, score in zip(txts, boxes, scores):
        text = (text or "").strip()
        if not text or score < min_score:
            continue
        xs = [float(p[0]) for p in quad]
        ys = [float(p[1]) for p in quad]
        if turned:
            xs = [width - x for x in xs]
            ys = [height - y for y in ys]
        out.append((text, (min(xs) / scale, min(ys) / scale, max(xs) / scale, max(ys) / scale), float(score)))
    return out


def upside_down(eng: Any, pixels: Any, boxes: Any) -> bool:
    """Whether most of the page's widest lines are classified as turned by 180 degrees."""
    if boxes is None or len(boxes) == 0:
        return False
    spans = []
    for quad in boxes:
        xs = [float(p[0]) for p in quad]
        ys = [float(p[1]) for p in quad]
        x0, y0, x1, y1 = int(min(xs)), int(min(ys)), int(max(xs)) + 1, int(max(ys)) + 1
        if x1 - x0 > y1 - y0 > 2:  # horizontal lines only: the classifier knows 0 and 180 degrees
            spans.append((x1 - x0, (max(y0, 0), y1, max(x0, 0), x1)))
    widest = [b for _, b in sorted(spans, key=lambda s: -s[0])[:ORIENTATION_LINES]]
    if not widest:
        return False
    crops = [pixels[y0:y1, x0:x1] for y0, y1, x0, x1 in widest]
    _, result = eng.cls_and_rotate(crops)
    labels = getattr(result, "cls_res", None) or []
    turned = sum(1 for label, score in labels if str(label) == "180" and score >= UPSIDE_DOWN_SCORE)
    return turned * 2 > len(crops)
