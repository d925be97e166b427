"""The real text models under the embedding queue's two workers: concurrent calls, thread priorities."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from embcluster.config import Settings
from embcluster.embed.batching import BatchingOptions, EmbedBatcher
from embcluster.embed.long_text import LongText
from embcluster.embed.priority import thread_nice
from embcluster.embed.registry import EmbedderRegistry

POOL = LongText(mode="pool")


def _texts(article: Callable[[int], str]) -> list[str]:
    short = [f"item {i}: {'a red shoe ' * (i % 7)} size {i}" for i in range(22)]
    return short + [article(1200), article(400)]  # pooled over several windows


def _at_once(embed: Callable[[list[str]], np.ndarray], batches: list[list[str]]) -> list[np.ndarray]:
    """Each batch embedded on its own thread, all threads started together."""
    out: list[Any] = [None] * len(batches)
    start = threading.Barrier(len(batches))

    def work(i: int) -> None:
        start.wait()
        try:
            out[i] = embed(batches[i])
        except BaseException as exc:  # the test reports it
            out[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for result in out:
        if isinstance(result, BaseException):
            raise result
    return out


def _check_concurrent_calls(embedder: Any, texts: list[str]) -> None:
    def pooled(batch: list[str]) -> np.ndarray:
        return np.asarray(embedder.embed_long(batch, POOL).vectors)

    batches = [texts[i::4] for i in range(4)] * 2  # eight calls at once, of different shapes
    # The reference: the same batches one at a time (the onnx-int8 tier quantizes activations per
    # batch, so a text's vector depends on the batch it is in; the same batch gives the same rows).
    alone = [pooled(b) for b in batches]
    for _ in range(2):
        for got, want in zip(_at_once(pooled, batches), alone):
            np.testing.assert_allclose(got, want, atol=2e-5)


def test_the_full_model_embeds_concurrent_calls_as_it_does_one_at_a_time(text_embedder, article) -> None:  # type: ignore[no-untyped-def]
    _check_concurrent_calls(text_embedder, _texts(article))


def test_the_onnx_tier_embeds_concurrent_calls_as_it_does_one_at_a_time(tier_settings: Settings, article) -> None:  # type: ignore[no-untyped-def]
    _check_concurrent_calls(EmbedderRegistry(tier_settings).text("", "onnx-int8"), _texts(article))


def test_the_static_tier_embeds_concurrent_calls_as_it_does_one_at_a_time(tier_settings: Settings, article) -> None:  # type: ignore[no-untyped-def]
    _check_concurrent_calls(EmbedderRegistry(tier_settings).text("", "static"), _texts(article))


def _nice_by_thread() -> dict[int, int]:
    """Nice value of every thread of this process (Linux ``/proc``)."""
    out = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            out[int(task.name)] = os.getpriority(os.PRIO_PROCESS, int(task.name))  # a thread id is a pid here
        except OSError:  # the thread ended meanwhile
            continue
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="threads have a nice value of their own on Linux")
def test_torch_threads_of_the_bulk_lane_run_at_its_nice(text_embedder, article) -> None:  # type: ignore[no-untyped-def]
    import torch

    base = thread_nice()
    assert base is not None and base < 19
    nice = min(19, base + 6)
    before = {tid for tid, n in _nice_by_thread().items() if n == nice}
    batcher = EmbedBatcher(text_embedder, BatchingOptions(batch_size=64, interactive_items=2, bulk_nice=nice))
    try:
        batcher.embed([f"bulk text number {i} " * 20 for i in range(64)])  # the bulk worker's forward pass
        lowered = {tid for tid, n in _nice_by_thread().items() if n == nice} - before
        # the worker and the team torch's OpenMP started for it (kept for its next pass)
        assert len(lowered) >= torch.get_num_threads() >= 2
        batcher.embed(["a query"])  # the interactive worker, and the team it starts, keep the normal priority
        assert {tid for tid, n in _nice_by_thread().items() if n == nice} - before == lowered
    finally:
        batcher.close(10)


class _Recording:
    """Forwards to a ``tokenizers.Tokenizer``; records the calls that change its settings."""

    CHANGES = {"enable_truncation", "no_truncation", "enable_padding", "no_padding"}

    def __init__(self, real: Any) -> None:
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "changes", [])

    def __getattr__(self, name: str) -> Any:
        if name in self.CHANGES:
            self.changes.append(name)
        return getattr(self._real, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self.changes.append(name)
        setattr(self._real, name, value)


def test_after_loading_no_call_changes_the_shared_tokenizer(article) -> None:  # type: ignore[no-untyped-def]
    from embcluster.embed.registry import bundled_model_path
    from embcluster.embed.text import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder("all-MiniLM-L6-v2", bundled_model_path(), batch_size=8)
    hf = emb.model.tokenizer
    recording = _Recording(hf._tokenizer)
    hf._tokenizer = recording  # what every thread's encode tokenizes with
    emb.embed(["one"])
    emb.embed([f"text {i} " * i for i in range(20)])  # batches of 8, several lengths
    emb.embed_long([article(3000)], POOL)
    assert recording.changes == []  # so two threads may share it: nothing is written on a call
    assert emb._lock is None  # and the model takes concurrent calls


_POOL_PROBE = """
import json, os, sys
from pathlib import Path
from embcluster.config import Settings
from embcluster.embed.batching import BatchingOptions, EmbedBatcher
from embcluster.embed.priority import thread_nice
from embcluster.embed.registry import EmbedderRegistry

nice = int(sys.argv[2])
emb = EmbedderRegistry(Settings(data_dir=Path(sys.argv[1]))).text("", "static")
batcher = EmbedBatcher(emb, BatchingOptions(batch_size=64, interactive_items=2, bulk_nice=nice))
batcher.embed([f"bulk text number {i} " * 30 for i in range(200)])  # the process's first texts after the load
niced = [(task / "comm").read_text().strip() for task in Path("/proc/self/task").iterdir()
         if os.getpriority(os.PRIO_PROCESS, int(task.name)) == nice]
print(json.dumps(niced))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="threads have a nice value of their own on Linux")
def test_the_tokenizers_thread_pool_keeps_normal_priority(tier_settings: Settings) -> None:
    """In a fresh process (the pool is one per process): a bulk pass comes first after the load,
    and still only the bulk worker runs at the lower priority, not the pool that tokenizes for all."""
    import json
    import subprocess

    base = thread_nice()
    assert base is not None and base < 19
    nice = min(19, base + 6)
    out = subprocess.run([sys.executable, "-c", _POOL_PROBE, str(tier_settings.data_dir), str(nice)],
                         capture_output=True, text=True, timeout=120, check=True)
    niced = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(niced) == 1, niced  # the bulk worker alone


def test_a_bulk_nice_out_of_range_is_one_line_naming_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from embcluster.cli import main

    monkeypatch.setenv("EMBCLUSTER_EMBED_BULK_NICE", "20")
    assert main(["serve", "--data-dir", str(tmp_path), "--port", "0"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "embcluster: invalid settings:",
        "  embed_bulk_nice (EMBCLUSTER_EMBED_BULK_NICE) = '20': Input should be less than or equal to 19"]
