"""Encode backends on this machine: passages/s of each beside torch, and whether their vectors agree.

    nice -n 15 .venv/bin/python bench/encode_backends.py [--json] [--sample 1000] [--distractors 2000]

all-MiniLM-L6-v2 (the pip package) encodes SciFact through engine.models.encoder.open_encoder with each
models.encode_backend, batch 32, max_seq_length 256, no embedding cache. Per backend:

- prepare_s: export (and quantization) of the model into a fresh cache folder, plus loading it;
- passages_per_s: the first --sample passages of the sub-corpus, after a warm-up batch;
- min_cos / mean_cos: cosine of each passage and query vector with torch's;
- ndcg@10: SciFact test queries over a sub-corpus (every relevant passage + --distractors others, seeded as
  bench/recipes.py's `load`), exact cosine search.

A backend agrees when min_cos >= 0.999 and nDCG@10 equals torch's to 3 decimals: only such a backend, and only when
faster, may be what models.encode_backend: auto picks (engine.models.backends.AUTO_CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import log, quiet_environment  # bench/common.py (this folder is on sys.path when run)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MODEL = "all-MiniLM-L6-v2"
SEQ = 256
BATCH = 32


def open_all(backends: list[str], cache: Path) -> tuple[dict[str, Any], dict[str, float]]:
    """An encoder per backend, and the seconds its preparation took (export, quantization, load)."""
    from engine.models.encoder import open_encoder

    encoders, prepared = {}, {}
    for backend in backends:
        log(f"{backend}: prepare (export, quantize, load)")
        started = time.perf_counter()
        encoders[backend] = open_encoder(MODEL, base_dir=cache, device="cpu", batch_size=BATCH, backend=backend)
        encoders[backend].max_seq_length = SEQ
        prepared[backend] = round(time.perf_counter() - started, 1)
    return encoders, prepared


def throughput(encoders: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    """Passages/s of each encoder on `texts`, interleaved: every block of 64 passages is encoded by each backend in
    turn (the order rotating), so a change in the machine's load falls on all of them alike."""
    import numpy as np

    names = list(encoders)
    for encoder in encoders.values():
        encoder.encode(texts[:BATCH], "document")  # warm-up: first-call allocations are not the rate
    seconds = dict.fromkeys(names, 0.0)
    vectors: dict[str, list[Any]] = {n: [] for n in names}
    for number, start in enumerate(range(0, len(texts), 64)):
        block = texts[start : start + 64]
        for name in names[number % len(names) :] + names[: number % len(names)]:
            began = time.perf_counter()
            vectors[name].append(encoders[name].encode(block, "document"))
            seconds[name] += time.perf_counter() - began
    return {n: (len(texts) / seconds[n], np.concatenate(vectors[n])) for n in names}


def measure(name: str, encoder: Any, head: tuple[float, Any], data: dict[str, Any], sample: int) -> dict[str, Any]:
    """nDCG@10 of one backend (the sample's vectors reused), with its rate and all its vectors for comparison."""
    import numpy as np

    from engine.retrieval.arms import dense_search
    from engine.retrieval.metrics import ndcg_at_k

    docs = list(data["corpus"])
    texts = [data["corpus"][d] for d in docs]
    rate, vectors = head
    rest = texts[sample:]
    passages = np.concatenate([vectors, encoder.encode(rest, "document")]) if rest else vectors
    ids = list(data["test"])
    queries = encoder.encode([data["queries"][q] for q in ids], "query")
    ranked = dense_search(queries, passages, 10)
    ndcg = [ndcg_at_k([docs[j] for j in r], data["test"][q], 10) for q, r in zip(ids, ranked, strict=True)]
    log(f"{name}: {rate:.1f} passages/s, nDCG@10 {np.mean(ndcg):.3f}")
    return {
        "passages_per_s": round(rate, 1),
        "ndcg@10": round(float(np.mean(ndcg)), 3),
        "_vectors": np.concatenate([passages, queries]),
    }


def compare(rows: list[dict[str, Any]]) -> None:
    """Speed-up and agreement of every row with the first (torch)."""
    import numpy as np

    reference = rows[0]
    for row in rows:
        cosines = np.sum(row["_vectors"] * reference["_vectors"], axis=1)
        row["speedup"] = round(row["passages_per_s"] / reference["passages_per_s"], 2)
        row["min_cos"] = round(float(cosines.min()), 5)
        row["mean_cos"] = round(float(cosines.mean()), 6)
        row["agrees"] = bool(row["min_cos"] >= 0.999 and row["ndcg@10"] == reference["ndcg@10"])
    for row in rows:
        del row["_vectors"]


def table(rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    head = f"{'backend':<10} {'prepare s':>9} {'passages/s':>10} {'speed-up':>8} {'min cos':>8} {'mean cos':>9} "
    head += f"{'nDCG@10':>7}  agrees"
    lines = [
        f"all-MiniLM-L6-v2, batch {BATCH}, max_seq_length {SEQ}, {info['threads']} torch threads; speed on "
        f"{info['sample']} SciFact passages; nDCG@10 on {info['queries']} test queries over {info['corpus']} passages",
        head,
    ]
    for r in rows:
        lines.append(
            f"{r['backend']:<10} {r['prepare_s']:>9.1f} {r['passages_per_s']:>10.1f} {r['speedup']:>8.2f} "
            f"{r['min_cos']:>8.5f} {r['mean_cos']:>9.6f} {r['ndcg@10']:>7.3f}  {'yes' if r['agrees'] else 'no'}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "scifact")
    parser.add_argument("--sample", type=int, default=1000, help="passages timed per backend")
    parser.add_argument("--distractors", type=int, default=2000, help="non-relevant passages in the nDCG corpus")
    parser.add_argument("--queries", type=int, default=None, help="a seeded subset of the test queries (all)")
    parser.add_argument("--backends", default="onnx,onnx-int8,openvino", help="compared with torch, comma-separated")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    quiet_environment()
    import torch
    from recipes import load  # the seeded SciFact sub-corpus every bench shares

    from engine.models.backends import require

    data = _subset(load(args.data, train_pairs=None, test_queries=None, distractors=0), args.queries, args.distractors)
    info = {
        "threads": torch.get_num_threads(),
        "sample": min(args.sample, len(data["corpus"])),
        "queries": len(data["test"]),
        "corpus": len(data["corpus"]),
    }
    skipped: dict[str, str] = {}
    chosen = []
    for backend in ["torch", *[b.strip() for b in args.backends.split(",") if b.strip()]]:
        try:
            require(backend)
            chosen.append(backend)
        except Exception as e:
            skipped[backend] = str(e)
    texts = list(data["corpus"].values())[: info["sample"]]
    with tempfile.TemporaryDirectory(prefix="encode-backends-") as cache:
        encoders, prepared = open_all(chosen, Path(cache))
        heads = throughput(encoders, texts)
        rows = [
            {"backend": n, "prepare_s": prepared[n], **measure(n, encoders[n], heads[n], data, info["sample"])}
            for n in chosen
        ]
    compare(rows)
    if args.json:
        print(json.dumps({**info, "rows": rows, "skipped": skipped}, indent=2))
    else:
        print(table(rows, info))
        for backend, why in skipped.items():
            print(f"{backend}: skipped ({why})")


def _subset(data: dict[str, Any], queries: int | None, distractors: int) -> dict[str, Any]:
    """`queries` seeded test queries (all when None), their relevant passages and `distractors` seeded others: the
    sampling of bench/recipes.py's `load`, which subsets the corpus only when it samples queries."""
    import random

    picked = sorted(data["test"])
    if queries and queries < len(picked):
        picked = sorted(random.Random(7).sample(picked, queries))
    data["test"] = {q: data["test"][q] for q in picked}
    needed = {d for q in picked for d in data["test"][q]}
    others = sorted(d for d in data["corpus"] if d not in needed)
    keep = needed | set(random.Random(7).sample(others, min(distractors, len(others))))
    data["corpus"] = {d: t for d, t in data["corpus"].items() if d in keep}
    return data


if __name__ == "__main__":
    main()
