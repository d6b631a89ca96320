"""The embedded default's engine: llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) on loopback.

:class:`LlamaServer` starts ``python -m llama_cpp.server`` on 127.0.0.1 on a
free port with a GGUF file, waits until it answers ``GET /v1/models``, and
stops it on :meth:`stop` (the pipeline calls it on exit, on Ctrl-C and on
errors; on Linux the server is also told to die with its parent, so a killed
run leaves no orphan).  The server reuses the KV cache of the longest common
prefix with the previous request; the pipeline's stage-by-stage batches keep
requests that share a prefix together.  llama-cpp-python's extra RAM prompt
cache stays off: in our runs its resident memory grew past 6 GB over a few
dozen requests.  ``logits_all=True`` keeps every position's logits, which
llama-cpp-python needs to answer ``logprobs`` (slower prompts, n_ctx x vocab
floats of RAM): only a server for a role that reads logprobs gets it.  The log
(with per-request prompt-evaluation timings) goes to a file.
"""
from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from llm.base import BackendError

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child before exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _how(returncode: int) -> str:
    """A process's end as words: "code 1", or "signal 11 (SIGSEGV)" for a negative return code."""
    if returncode >= 0:
        return f"code {returncode}"
    try:
        return f"signal {-returncode} ({signal.Signals(-returncode).name})"
    except ValueError:
        return f"signal {-returncode}"


class LlamaServer:
    def __init__(self, model_path: Path, alias: str, n_ctx: int = 4096, n_threads: int | None = None,
                 log_dir: Path | None = None, verbose: bool = True, logits_all: bool = False):
        self.model_path, self.alias, self.n_ctx = Path(model_path), alias, n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self.port = free_port()
        self.log_path = Path(log_dir or ".") / f"llama-server-{self.port}.log"
        self.verbose, self.logits_all = verbose, logits_all
        self._proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path),
                "--model_alias", self.alias, "--host", "127.0.0.1", "--port", str(self.port),
                "--n_ctx", str(self.n_ctx), "--n_threads", str(self.n_threads), "--n_threads_batch", str(self.n_threads),
                # the server's default keeps every position's logits: slower, GBs of RAM; needed for logprobs
                "--logits_all", str(self.logits_all).lower(), "--verbose", str(self.verbose).lower()]

    def prompt_tokens_evaluated(self) -> list[int]:
        """Prompt tokens the server actually evaluated, per request (from its log; needs verbose)."""
        found = re.findall(r"prompt eval time =\s*[\d.]+ ms /\s*(\d+) tokens", self.log_path.read_text(errors="replace"))
        return [int(n) for n in found]

    def start(self, timeout: float = 300.0) -> "LlamaServer":
        try:
            import llama_cpp.server  # noqa: F401
        except ImportError:
            raise BackendError("llama.cpp's server is not installed (pip install 'misconception-factory[cpu]', "
                               "which brings llama-cpp-python[server])") from None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        self._proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      preexec_fn=preexec)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BackendError(f"llama.cpp server exited with {_how(self._proc.returncode)} while loading "
                                   f"{self.model_path.name}: {self.last_log_line()} (log: {self.log_path})")
            if self.healthy():
                return self
            time.sleep(0.25)
        self.stop()
        raise BackendError(f"llama.cpp server did not answer within {timeout:.0f} s (log: {self.log_path})")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def exit_reason(self) -> str | None:
        """Why the server is gone, for an error message ("exited with signal 11 (SIGSEGV): <its last log line>
        (log: ...)"), or None while it runs (or before it started)."""
        code = self._proc.poll() if self._proc is not None else None
        if code is None:
            return None
        return f"exited with {_how(code)}: {self.last_log_line()} (log: {self.log_path})"

    def last_log_line(self) -> str:
        try:
            lines = [x for x in self.log_path.read_text(errors="replace").splitlines() if x.strip()]
        except OSError:
            return "no log"
        return lines[-1][:300] if lines else "no output"

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
