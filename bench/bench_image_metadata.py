"""IMAGE_METADATA on real data: do clusters of Phosphor icon metadata recover the icons' own categories?

Data: the 1,512 icons of ``@phosphor-icons/core`` 2.1.1 (``embcluster.data.load_phosphor``: name,
tags, Figma category — one of 18 — and the release that added each icon). No SVGs, no pixels.

Through the service (an in-process server, the Python client over loopback): for each rendering,
a fresh IMAGE_METADATA collection, ``ingest_many`` of every icon, ``cluster(k=18, seed)``, and the
points' ``cluster_id`` read back with ``ListClusterMembers``. Reported per rendering: NMI and ARI
of ``cluster_id`` against the Figma categories (mean over ``--seeds`` seeds; each seed is a fresh
collection, so runs are not warm-started from each other).

Renderings (``ImageMetadataSpec``), all with title = the icon name with spaces:

* **title + tags** (the chosen default for such catalogues): ``"arrow circle down. tags: a, b."``;
* **title + tags + published_in**: the same text plus the release version as one scaled numeric
  feature (low 1.0, high 2.1, weight 0.2) — a number unrelated to the category: this row shows
  what a weak numeric feature costs;
* **title only**: the baseline a naive catalogue gets from file names alone;
* **random assignment**: k uniform random labels (mean over 20 draws): the chance level.

Throughput: images/s of ``ingest_many`` (gRPC, validation, rendering, embedding, store writes) of
the first ``--tn`` icons with the chosen rendering into a fresh collection vs the bare
``SentenceTransformer.encode`` of the same rendered texts on the service's own model instance, in
the same batches; ``--repeats`` rounds, the two paths alternating first, medians reported (ratio =
how much of the embedding speed the whole path keeps).

    .venv/bin/python bench/bench_image_metadata.py [--n 1512] [--k 18] [--seeds 1] [--batch 256]
                                                   [--tn 512] [--repeats 3]
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import InProcessServer, cluster_labels, emit_result, print_table, quiet_logs, ratio  # noqa: E402

RENDERINGS: dict[str, dict[str, Any]] = {
    "title + tags (chosen)": {"text_fields": ["title", "tags"]},
    "title + tags + published_in": {
        "text_fields": ["title", "tags"],
        "numeric_attributes": [{"key": "published_in", "low": 1.0, "high": 2.1, "weight": 0.2}],
    },
    "title only": {"text_fields": ["title"]},
}


def _items(rows: list[dict[str, Any]]) -> list[Any]:
    from embcluster_client import make_image_item

    return [make_image_item(r["id"], title=r["title"], tags=r["tags"],
                            attributes={"published_in": r["published_in"], "codepoint": r["codepoint"]},
                            metadata={"category": r["figma_category"]}) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1512, help="icons (by name order; max 1512)")
    parser.add_argument("--k", type=int, default=18, help="clusters (18 = number of Figma categories)")
    parser.add_argument("--seeds", type=int, default=1, help="clustering seeds per rendering (fresh collection each)")
    parser.add_argument("--batch", type=int, default=256, help="items per Ingest call")
    parser.add_argument("--tn", type=int, default=512, help="icons per throughput round")
    parser.add_argument("--repeats", type=int, default=3, help="throughput rounds (paths alternate first)")
    args = parser.parse_args()
    quiet_logs()

    from embcluster.data import load_phosphor
    from embcluster.embed.image import render_image_metadata
    from embcluster.schema import ImageMetadataInput, ImageMetadataSpec
    from embcluster_client import make_image_spec

    rows = load_phosphor()[: args.n]
    ids = [r["id"] for r in rows]
    truth = [r["figma_category"] for r in rows]
    items = _items(rows)
    print(f"{len(rows)} Phosphor icons, {len(set(truth))} Figma categories, k={args.k}, seeds 0..{args.seeds - 1}")

    results: dict[str, Any] = {}
    table = []
    with InProcessServer() as srv:
        c = srv.client
        embedder = srv.text_embedder()
        embedder.embed(["warm up the model"] * 64)
        for label, spec_kw in RENDERINGS.items():
            nmis, aris = [], []
            for seed in range(args.seeds):
                name = f"icons-{len(results)}-{seed}"
                c.create_collection(name, input_kind="image_metadata", image_metadata=make_image_spec(**spec_kw))
                c.ingest_many(name, items, batch_size=args.batch)
                c.cluster(name, k=args.k, seed=seed)
                found = cluster_labels(c, name, ids)
                nmis.append(normalized_mutual_info_score(truth, found))
                aris.append(adjusted_rand_score(truth, found))
                c.delete_collection(name)
            results[label] = {"nmi": float(np.mean(nmis)), "ari": float(np.mean(aris))}
            table.append([label, results[label]["nmi"], results[label]["ari"]])
            print(f"  {label}: NMI {results[label]['nmi']:.3f}  ARI {results[label]['ari']:.3f}", flush=True)

        rng = np.random.default_rng(0)
        draws = [rng.integers(0, args.k, len(rows)) for _ in range(20)]
        results["random assignment"] = {
            "nmi": float(np.mean([normalized_mutual_info_score(truth, d) for d in draws])),
            "ari": float(np.mean([adjusted_rand_score(truth, d) for d in draws])),
        }
        table.append(["random assignment", results["random assignment"]["nmi"], results["random assignment"]["ari"]])

        # Throughput: the whole ingest path vs embedding alone (same texts, same batches, same model).
        spec = ImageMetadataSpec(text_fields=["title", "tags"])
        t_rows, t_items = rows[: args.tn], items[: args.tn]
        t0 = time.perf_counter()
        texts = [render_image_metadata(ImageMetadataInput(title=r["title"], tags=r["tags"]), spec) for r in t_rows]
        render_s = time.perf_counter() - t0
        ingest_s, encode_s = [], []
        for r in range(args.repeats):
            name = f"throughput-{r}"
            c.create_collection(name, input_kind="image_metadata", image_metadata=make_image_spec(text_fields=["title", "tags"]))

            def ingest() -> None:
                t0 = time.perf_counter()
                c.ingest_many(name, t_items, batch_size=args.batch)
                ingest_s.append(time.perf_counter() - t0)

            def encode() -> None:
                t0 = time.perf_counter()
                for i in range(0, len(texts), args.batch):
                    embedder.embed(texts[i:i + args.batch])
                encode_s.append(time.perf_counter() - t0)

            for path in ((ingest, encode) if r % 2 == 0 else (encode, ingest)):
                path()
            c.delete_collection(name)
        ingest_rate = len(texts) / float(np.median(ingest_s))
        encode_rate = len(texts) / float(np.median(encode_s))

    chosen = results["title + tags (chosen)"]
    print_table("Clusters vs the icons' Figma categories (higher is better)",
                ["rendering", "NMI", "ARI"], table)
    print_table("Ratios", ["what", "ratio"], [
        ["NMI chosen / title only", ratio(chosen["nmi"], results["title only"]["nmi"])],
        ["NMI chosen / random", ratio(chosen["nmi"], results["random assignment"]["nmi"])],
        ["ARI chosen / title only", ratio(chosen["ari"], results["title only"]["ari"])],
        ["NMI with numeric tail / chosen", ratio(results["title + tags + published_in"]["nmi"], chosen["nmi"])],
        ["ingest (gRPC) / bare encode, images/s", ratio(ingest_rate, encode_rate)],
    ])
    print(f"\n{len(texts)} icons, medians of {args.repeats}: ingest {ingest_rate:.1f} images/s, bare encode of the "
          f"same renderings {encode_rate:.1f} texts/s; rendering itself {render_s * 1e6 / len(texts):.1f} us per icon")
    results["ingest_images_per_s"] = ingest_rate
    results["encode_texts_per_s"] = encode_rate
    results["render_us_per_item"] = render_s * 1e6 / len(texts)
    emit_result("image_metadata", vars(args), results)


if __name__ == "__main__":
    main()
