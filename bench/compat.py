"""Backward-compatibility benchmark (issue 7, stretch): new-model queries against old-model codes.

The collection holds BEBR codes of the *old* embedding model of some words (GloVe-50, l2, or
all-MiniLM-L6-v2 cut to 3 layers, cosine); the model is upgraded to the full all-MiniLM-L6-v2 (384-d,
cosine). Instead of re-encoding every row, a compatibility map
(``vecdb.quant.compat``) is fitted on ``--fit-rows`` items re-embedded by both models; new queries are
mapped and scored against the old codes, and rows re-embedded later are encoded through the map into
the same code matrix. Build the pair file first (``bench/make_compat_pairs.py``), then:

    python bench/compat.py /tmp/glove-minilm-words.hdf5 --queries 500

Recall@10 is measured against two exact truths over the same base items: the old model's neighbours
of the query word ("old truth": what the collection answered before the upgrade) and the new model's
("new truth": what a full re-index with the new model would answer). "rerank 4" re-scores the best 40
candidates with the stored fp32 vectors of the scanned space. One thread. Results:
bench/results/compat-<time>.jsonl / .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import faiss
import h5py
import numpy as np
from threadpoolctl import threadpool_limits

from vecdb.quant import BEBRQuantizer, rerank
from vecdb.quant.bebr_train import Settings
from vecdb.quant.compat import CompatibleQuantizer, CompatSettings, fit_compatibility

RESULTS = Path(__file__).resolve().parent / "results"


def exact_top10(base: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    index = faiss.IndexFlatL2(base.shape[1]) if metric == "l2" else faiss.IndexFlatIP(base.shape[1])
    index.add(np.ascontiguousarray(base))
    _, ids = index.search(np.ascontiguousarray(queries), 10)
    return ids


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(f[:10], t)) for f, t in zip(found, truth, strict=True)])) / 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", type=Path, help="HDF5 from bench/make_compat_pairs.py")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--fit-rows", type=int, default=20000, help="items re-embedded to fit the map")
    parser.add_argument("--bits", type=int, default=4, help="BEBR bits per dimension of both versions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    with h5py.File(args.pairs, "r") as f:
        old_all = np.asarray(f["old"], dtype=np.float32)
        new_all = np.asarray(f["new"], dtype=np.float32)
        old_metric = str(f.attrs.get("old_metric", "l2"))
    if old_metric == "cosine":  # scored as inner products of unit vectors
        old_all /= np.maximum(np.linalg.norm(old_all, axis=1, keepdims=True), 1e-30)
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(old_all.shape[0])
    q_idx, b_idx = perm[: args.queries], np.sort(perm[args.queries :])
    old, new = old_all[b_idx], new_all[b_idx]
    old_q, new_q = old_all[q_idx], new_all[q_idx]
    truth = {"old": exact_top10(old, old_q, old_metric), "new": exact_top10(new, new_q, "ip")}
    fit_idx = np.sort(rng.choice(len(b_idx), min(args.fit_rows, len(b_idx)), replace=False))
    half = np.zeros(len(b_idx), dtype=bool)
    half[rng.permutation(len(b_idx))[: len(b_idx) // 2]] = True  # rows re-embedded by the new model
    dim_out = 64 * ((old.shape[1] + 63) // 64)
    progress = not args.quiet
    rows: list[dict] = []

    def add(name: str, scan: Callable[[int], np.ndarray], full: np.ndarray | None, metric: str, **extra) -> None:
        """scan(i) -> estimated distances of query i to every base row; full: fp32 rows to re-rank with."""
        found, reranked = [], []
        start = time.perf_counter()
        for i in range(len(q_idx)):
            est = scan(i)
            cand = np.argpartition(est, 40)[:40]
            cand = cand[np.argsort(est[cand], kind="stable")]
            found.append(cand[:10])
            if full is not None:
                query = extra["rerank_query"](i)
                reranked.append(rerank(query, cand, full, metric, 10)[0])
        per_query_ms = 1000 * (time.perf_counter() - start) / len(q_idx)
        extra.pop("rerank_query", None)
        row = {"method": name, "per_query_ms": round(per_query_ms, 2), **extra}
        for which in ("old", "new"):
            row[f"recall_{which}"] = round(recall(np.array(found), truth[which]), 4)
            if reranked:
                row[f"rerank4_{which}"] = round(recall(np.array(reranked), truth[which]), 4)
        rows.append(row)
        print(json.dumps(row), flush=True)

    def flat(base: np.ndarray, queries: np.ndarray, metric: str) -> Callable[[int], np.ndarray]:
        if metric == "l2":
            norms = (base * base).sum(1)
            return lambda i: norms - 2.0 * (base @ queries[i])
        return lambda i: -(base @ queries[i])

    faiss.omp_set_num_threads(1)
    with threadpool_limits(1):
        # Before the upgrade: old queries, old vectors / codes.
        add("old query -> old fp32 (before the upgrade)", flat(old, old_q, old_metric), None, old_metric)
        t0 = time.perf_counter()
        old_codes_q = BEBRQuantizer(old.shape[1], old_metric, bits=args.bits, dim_out=dim_out, seed=args.seed,
                                    settings=Settings(progress=progress))
        old_codes_q.train(old)
        old_train_s = time.perf_counter() - t0
        old_codes = old_codes_q.encode(old)
        old_layout = old_codes_q.scan_layout(old_codes)
        add(f"old query -> old BEBR u={args.bits} codes", lambda i: old_codes_q.scan(old_codes_q.prepare(old_q[i]),
            old_layout), old, old_metric, rerank_query=lambda i: old_q[i], train_s=round(old_train_s, 1))
        # A full re-index with the new model: the cost the map avoids.
        add("new query -> new fp32 (full re-index)", flat(new, new_q, "ip"), None, "cosine")
        t0 = time.perf_counter()
        new_codes_q = BEBRQuantizer(new.shape[1], "cosine", bits=args.bits, seed=args.seed,
                                    settings=Settings(progress=progress))
        new_codes_q.train(new)
        new_train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        new_layout = new_codes_q.scan_layout(new_codes_q.encode(new))
        reencode_s = time.perf_counter() - t0
        add(f"new query -> new BEBR u={args.bits} codes (full re-index)",
            lambda i: new_codes_q.scan(new_codes_q.prepare(new_q[i]), new_layout), new, "cosine",
            rerank_query=lambda i: new_q[i], train_s=round(new_train_s, 1), encode_s=round(reencode_s, 1),
            bytes_per_vector=new_codes_q.code_size)
        if new.shape[1] == old.shape[1]:  # same width: what searching old codes with no map gives
            add(f"new query -no map-> old BEBR u={args.bits} codes SDC",
                lambda i: old_codes_q.scan(old_codes_q.prepare(new_q[i], "sdc"), old_layout), old, old_metric,
                rerank_query=lambda i: new_q[i])
        # After the upgrade, old codes kept: new queries through the compatibility map.
        for label, settings in (("ridge", CompatSettings(mlp=False, progress=progress)),
                                ("ridge+MLP", CompatSettings(progress=progress))):
            t0 = time.perf_counter()
            mapping, report = fit_compatibility(new[fit_idx], old[fit_idx], old_metric, new_unit=True,
                                                seed=args.seed, settings=settings)
            fit_s = time.perf_counter() - t0
            mapped_q = mapping.apply(new_q)
            view = CompatibleQuantizer(old_codes_q, mapping)
            info = {"fit_s": round(fit_s, 1), "map_bytes": mapping.nbytes, "fit_report": report}
            add(f"new query -{label}-> old fp32", flat(old, mapped_q, old_metric), None, old_metric, **info)
            for mode in ("sdc", "asym"):
                add(f"new query -{label}-> old BEBR u={args.bits} codes {mode.upper()}",
                    lambda i, v=view, m=mode: v.scan(v.prepare(new_q[i], m), old_layout), old, old_metric,
                    rerank_query=lambda i, mq=mapped_q: mq[i], **info)
            # Half the rows re-embedded by the new model and encoded through the map: one code matrix
            # of both versions; the re-ranking vectors of those rows are their mapped vectors.
            t0 = time.perf_counter()
            mixed_full = old.copy()
            mixed_full[half] = mapping.apply(new[half])
            mixed_codes = old_codes.copy()
            mixed_codes[half] = view.encode(new[half])
            mixed_encode_s = time.perf_counter() - t0
            mixed_layout = old_codes_q.scan_layout(mixed_codes)
            add(f"new query -{label}-> mixed codes (50% rows re-embedded, encoded through the map) SDC",
                lambda i, v=view, lay=mixed_layout: v.scan(v.prepare(new_q[i], "sdc"), lay), mixed_full, old_metric,
                rerank_query=lambda i, mq=mapped_q: mq[i], encode_s=round(mixed_encode_s, 1))
            add(f"old query -> mixed codes ({label} map) SDC",
                lambda i, lay=mixed_layout: old_codes_q.scan(old_codes_q.prepare(old_q[i], "sdc"), lay), mixed_full,
                old_metric, rerank_query=lambda i: old_q[i])

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    context = {"pairs": args.pairs.name, "old_metric": old_metric, "base_rows": len(b_idx), "queries": len(q_idx),
               "fit_rows": len(fit_idx),
               "bits": args.bits, "machine": f"{platform.machine()}, {platform.system()}", "commit": commit}
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / f"compat-{stamp}.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps({**row, **context}) + "\n")
    lines = [f"# Compatibility: new-model queries on old-model codes ({stamp})", "",
             f"{context}", "",
             "| method | recall@10 old truth | rerank 4 | recall@10 new truth | rerank 4 | ms/query |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['recall_old']:.3f} | {r.get('rerank4_old', float('nan')):.3f} | "
                     f"{r['recall_new']:.3f} | {r.get('rerank4_new', float('nan')):.3f} | {r['per_query_ms']} |")
    (args.out / f"compat-{stamp}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
