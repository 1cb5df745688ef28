"""Run an iterator in a thread ahead of its consumer, so producing and consuming overlap.

``mmrag index`` reads documents from ``ingest_many`` and encodes them at each commit. Read
directly, the ingest workers that finish while a commit encodes sit idle until the loop asks for
the next document; read through ``Prefetch``, a thread keeps handing them files.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Iterator

_DONE = object()


class Prefetch:
    """Up to ``depth`` items produced ahead; the producer's exceptions re-raise in the consumer.
    ``close()`` stops the producer at its next item and closes the iterator in its own thread."""

    def __init__(self, items: Iterator[Any], depth: int):
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="mmrag-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._put((item, None)):
                    break
        except BaseException as e:  # handed to the consumer, which raises it
            self._put((None, e))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()
            self._put((_DONE, None))

    def __iter__(self) -> "Prefetch":
        return self

    def __next__(self) -> Any:
        item, err = self._queue.get()
        if err is not None:
            self._stop.set()
            raise err
        if item is _DONE:
            self._stop.set()
            raise StopIteration
        return item

    def close(self, timeout: float = 120.0) -> None:
        """Stop producing, and wait (at most ``timeout`` s) for the iterator to be closed."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.2)  # unblocks a producer waiting on a full queue
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)
            timeout -= 0.25
            if timeout <= 0:
                break
