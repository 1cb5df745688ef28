"""A real OpenAI-compatible server for tests: llama-cpp-python serving the bundled SmolLM2 GGUF.

``LlamaServer`` runs ``python -m llama_cpp.server`` as a child process on 127.0.0.1 (a free port
unless one is given), waits until ``/v1/models`` answers, and kills the process on ``stop``
(SIGKILL: the way a server dies when its machine or container goes away).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "smollm2"  # the alias the server answers to (any name reaches its only model)
EOS = "2"  # SmolLM2's <|im_end|>: a logit bias of -100 on it keeps generation going


def available() -> str | None:
    """Why the server cannot run here, or None when it can."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed: pip install -e '.[serve-test]'"
    if importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("sse_starlette") is None:
        return "the llama-cpp-python server extra is missing: pip install 'llama-cpp-python[server]'"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class LlamaServer:
    """One llama-cpp-python server process serving ``gguf``."""

    # One thread: on a busy 2-core machine llama.cpp's threads wait on each other at every barrier
    # (an 84-token prompt took 3-20 s with 2 threads and about 1 s with one under load 14).
    def __init__(self, gguf: Path, port: int | None = None, n_ctx: int = 4096, threads: int = 1,
                 extra: tuple[str, ...] = ()):
        self.gguf = Path(gguf)
        self.port = port or free_port()
        self.n_ctx, self.threads, self.extra = n_ctx, threads, list(extra)
        self.proc: subprocess.Popen | None = None
        self.log = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, wait: bool = True, ready_s: float = 120.0) -> "LlamaServer":
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf), "--model_alias", MODEL,
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
               "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads), "--verbose", "false", *self.extra]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if wait:
            self.wait_ready(ready_s)
        return self

    def wait_ready(self, ready_s: float = 120.0) -> None:
        import httpx

        deadline = time.monotonic() + ready_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"llama-cpp server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.base_url + "/models", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"llama-cpp server not ready within {ready_s:g} s:\n{self.tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGKILL the server and reap it (its port is free again right after)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def close(self) -> None:
        """Stop the server and remove its log."""
        self.stop()
        self.log.unlink(missing_ok=True)

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
