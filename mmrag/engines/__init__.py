"""Engines that run ``RAG.index``'s ingestion and encoding beyond one process pool (Ray Data)."""
