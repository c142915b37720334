"""Backward compatibility between embedding versions: search the old model's codes with new queries.

When the embedding model is upgraded, re-encoding every stored vector is the expensive part. A
compatibility map ``g: new space -> old space`` is fitted on items embedded by both models (a
sample of the collection re-embedded, no labels); then

* a query from the new model is mapped and scored against the codes the collection already holds;
* rows embedded by the new model are mapped and encoded with the *old* quantizer, so one code
  matrix holds rows of both versions and a single scan covers them.

``g`` is ``y = s * T((x - new_mean) / ...) + old_mean`` where ``T`` is BEBR's transform (a linear map
plus one residual MLP block, ``bebr_model.Transform``). Fitting, each stage kept only if it raises
recall@10 on held-out items (mapped new query against old vectors, truth = the old model's own
neighbours): ridge regression with the ridge strength picked on that check, then the residual block
fine-tuned with the listwise distillation loss BEBR trains with (the softmax over an anchor's true
old-space neighbours plus random rows of the distance from the *mapped* anchor must match the softmax
of the old-to-old distances) plus a regression term.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from tqdm import tqdm

from vecdb.quant.base import Quantizer
from vecdb.quant.bebr_model import Transform
from vecdb.quant.bebr_train import Adam, held_out_split, recall_at_10
from vecdb.types import check_metric

_NEIGHBOURS = 32
_RANDOM_NEGATIVES = 8
_MARGIN = 0.003  # a stage must beat the current map by more than this on held-out recall@10
_RIDGE_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # times the mean eigenvalue of the input covariance


@dataclass
class CompatSettings:
    """Knobs of the fit (defaults: tens of seconds on 20k pairs, 2 cores)."""

    mlp: bool = True
    hidden: int = 256
    steps: int = 400
    batch: int = 128
    anchors: int = 4000
    lr: float = 1e-3  # A1, c1 (pre-activations are O(1))
    lr_out: float = 1e-5  # W, A2, c2: W is the ridge solution, so it is only nudged (1e-3 undid it)
    temperature: float = 0.2
    regression_weight: float = 1.0
    progress: bool = True


@dataclass
class CompatibilityMap:
    """Maps (n, dim_new) vectors of the new model into the old model's space (n, dim_old)."""

    new_mean: np.ndarray  # (dim_new,) float32, after normalisation of new inputs when new_unit
    old_mean: np.ndarray  # (dim_old,) float32
    scale: float  # old-space rms norm around old_mean: T works on O(1) values
    transform: Transform
    new_unit: bool  # normalise new inputs first (a cosine model)

    @property
    def dim_new(self) -> int:
        return int(self.new_mean.shape[0])

    @property
    def dim_old(self) -> int:
        return int(self.old_mean.shape[0])

    def apply(self, new: np.ndarray) -> np.ndarray:
        """(n, dim_new) float32 -> (n, dim_old) float32 in the old model's space."""
        x = np.asarray(new, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim_new:
            raise ValueError(f"expected (n, {self.dim_new}) vectors of the new model, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("compatibility map input contains NaN or infinite values")
        y = self.transform.apply(self._inputs(x))
        return (y * np.float32(self.scale) + self.old_mean[None, :]).astype(np.float32)

    def _inputs(self, x: np.ndarray) -> np.ndarray:
        if self.new_unit:
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            x = x / np.where(norms > 0, norms, 1.0)
        return (x - self.new_mean[None, :]).astype(np.float32)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.transform.arrays().values()) + self.new_mean.nbytes + self.old_mean.nbytes

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {"scale": self.scale, "new_unit": self.new_unit}
        arrays = {"new_mean": self.new_mean.copy(), "old_mean": self.old_mean.copy()}
        arrays.update({f"transform.{k}": v.copy() for k, v in self.transform.arrays().items()})
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> CompatibilityMap:
        params = {k.split(".", 1)[1]: np.ascontiguousarray(v, dtype=np.float32)
                  for k, v in arrays.items() if k.startswith("transform.")}
        new_mean = np.ascontiguousarray(arrays["new_mean"], dtype=np.float32)
        old_mean = np.ascontiguousarray(arrays["old_mean"], dtype=np.float32)
        if "w" not in params or params["w"].shape != (new_mean.shape[0], old_mean.shape[0]):
            raise ValueError("compatibility map arrays lack a (dim_new, dim_old) transform.w")
        return cls(new_mean, old_mean, float(meta["scale"]), Transform(**params), bool(meta["new_unit"]))


def fit_compatibility(
    new: np.ndarray, old: np.ndarray, metric: str, *, new_unit: bool = False, seed: int = 0,
    settings: CompatSettings | None = None,
) -> tuple[CompatibilityMap, dict[str, float]]:
    """Fit a map from ``new`` (n, dim_new) to ``old`` (n, dim_old): row i of both is the same item.

    ``metric`` is the old collection's metric (what mapped queries are scored with); ``new_unit``
    normalises new inputs (cosine models). Returns the map and the held-out recall@10 of each stage.
    """
    settings = settings or CompatSettings()
    metric = check_metric(metric)
    new = np.asarray(new, dtype=np.float32)
    old = np.asarray(old, dtype=np.float32)
    if new.ndim != 2 or old.ndim != 2 or new.shape[0] != old.shape[0]:
        raise ValueError(f"need paired (n, d_new) and (n, d_old) rows, got {new.shape} and {old.shape}")
    if new.shape[0] < 2 * new.shape[1]:
        raise ValueError(f"a compatibility map over {new.shape[1]} dims needs at least {2 * new.shape[1]} "
                         f"paired rows, got {new.shape[0]}")
    if not (np.isfinite(new).all() and np.isfinite(old).all()):
        raise ValueError("compatibility training rows contain NaN or infinite values")
    rng = np.random.default_rng(seed)
    if metric == "cosine":
        old = old / np.maximum(np.linalg.norm(old, axis=1, keepdims=True), 1e-30)
    if new_unit:
        new = new / np.maximum(np.linalg.norm(new, axis=1, keepdims=True), 1e-30)
    new_mean, old_mean = new.mean(0), old.mean(0)
    x, target = new - new_mean, old - old_mean
    scale = float(np.sqrt((target * target).sum(1).mean())) or 1.0
    target = target / scale
    pairs = _Pairs.make(x.astype(np.float32), target.astype(np.float32), old_mean, scale, metric)
    val = _Held.make(pairs, rng)
    fit = pairs.subset(np.setdiff1d(np.arange(len(x)), np.concatenate([val.queries, val.base])))

    def as_map(tf: Transform) -> CompatibilityMap:
        return CompatibilityMap(new_mean.astype(np.float32), old_mean.astype(np.float32), scale, tf, new_unit)

    report: dict[str, float] = {}
    best: tuple[float, Transform] | None = None
    for lam in _RIDGE_GRID:
        tf = Transform(_ridge(fit.x, fit.target, lam))
        score = val.recall(pairs, tf)
        report[f"ridge_{lam:g}"] = score
        if best is None or score > best[0]:
            best = (score, tf)
    assert best is not None
    if settings.mlp and fit.x.shape[0] >= 1000:
        best = _fine_tune(fit, pairs, best, val, seed, settings, report)
    best[1].cache = {}
    return as_map(best[1]), report


@dataclass
class _Pairs:
    x: np.ndarray  # (n, d_new) centred new inputs
    target: np.ndarray  # (n, d_old) centred old vectors / scale: what the transform must output
    row_term: np.ndarray  # (n,) the row's own part of the old-metric distance in target units
    metric: str

    @classmethod
    def make(cls, x: np.ndarray, target: np.ndarray, old_mean: np.ndarray, scale: float, metric: str) -> _Pairs:
        # l2: |y - t|^2 = |t|^2 - 2 <y, t> + a per-query constant. ip / cosine: -<q, o> with
        # q = mean + scale y, o = mean + scale t is, over scale^2 and up to a per-query constant,
        # -<mean, t> / scale - <y, t> (cosine compares unit old vectors, and a query's norm
        # does not change its ranking).
        row = (target * target).sum(1) if metric == "l2" else -(target @ old_mean) / scale
        return cls(x, target, row.astype(np.float32), metric)

    @property
    def ip_scale(self) -> float:
        return 2.0 if self.metric == "l2" else 1.0

    def subset(self, idx: np.ndarray) -> _Pairs:
        return _Pairs(self.x[idx], self.target[idx], self.row_term[idx], self.metric)

    def distances(self, queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Old-metric distances, up to a per-query constant, from transform outputs (q, d_old) to
        the items ``rows``: (q, len(rows)) float32."""
        return self.row_term[rows][None, :] - self.ip_scale * (queries @ self.target[rows].T)


def _ridge(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    gram = x.T.astype(np.float64) @ x
    reg = lam * float(np.trace(gram)) / gram.shape[0]
    w = np.linalg.solve(gram + reg * np.eye(gram.shape[0]), x.T.astype(np.float64) @ y)
    return np.ascontiguousarray(w, dtype=np.float32)


@dataclass
class _Held:
    """Held-out items: new-model queries against other items' old vectors, truth = old-to-old top 10."""

    queries: np.ndarray
    base: np.ndarray
    truth: np.ndarray

    @classmethod
    def make(cls, pairs: _Pairs, rng: np.random.Generator) -> _Held:
        queries, base = held_out_split(pairs.x.shape[0], rng)
        true = pairs.distances(pairs.target[queries], base)
        return cls(queries, base, np.argsort(true, axis=1, kind="stable")[:, :10])

    def recall(self, pairs: _Pairs, tf: Transform) -> float:
        return recall_at_10(pairs.distances(tf.apply(pairs.x[self.queries]), self.base), self.truth)


def _fine_tune(
    fit: _Pairs, every: _Pairs, best: tuple[float, Transform], val: _Held, seed: int,
    settings: CompatSettings, report: dict[str, float],
) -> tuple[float, Transform]:
    """The residual block (and W) trained on ``fit`` with listwise distillation + regression."""
    rng = np.random.default_rng(seed + 1)
    n = fit.x.shape[0]
    anchors = np.sort(rng.choice(n, min(settings.anchors, n), replace=False))
    k = min(_NEIGHBOURS, n - 2)
    cands = np.empty((len(anchors), k + _RANDOM_NEGATIVES), dtype=np.int64)
    everything = np.arange(n)
    for s in range(0, len(anchors), 512):
        block = anchors[s : s + 512]
        dist = fit.distances(fit.target[block], everything)
        dist[np.arange(len(block)), block] = np.inf
        cands[s : s + len(block), :k] = np.argpartition(dist, k, axis=1)[:, :k]
    cands[:, k:] = rng.integers(0, n, (len(anchors), _RANDOM_NEGATIVES))
    teacher = np.stack([fit.distances(fit.target[a : a + 1], c)[0] for a, c in zip(anchors, cands, strict=True)])
    std = teacher.std(1, keepdims=True) + 1e-12
    t_logits = -(teacher - teacher.mean(1, keepdims=True)) / (std * settings.temperature)
    t_prob = np.exp(t_logits - t_logits.max(1, keepdims=True))
    t_prob /= t_prob.sum(1, keepdims=True)

    d_old = fit.target.shape[1]
    tf = Transform(
        best[1].w.copy(),
        # |y| ~ 1 (targets are scaled), so N(0, 2) entries give pre-activations of variance ~2
        a1=(rng.standard_normal((d_old, settings.hidden)) * np.sqrt(2.0)).astype(np.float32),
        c1=np.zeros(settings.hidden, np.float32),
        a2=np.zeros((settings.hidden, d_old), np.float32),  # starts as the ridge map exactly
        c2=np.zeros(d_old, np.float32),
    )
    params = tf.arrays()
    adam = Adam(params, {k: settings.lr if k in ("a1", "c1") else settings.lr_out for k in params})
    checks = 4
    with tqdm(total=settings.steps, desc="compatibility map", disable=not settings.progress, leave=False) as bar:
        for step in range(settings.steps):
            pick = rng.choice(len(anchors), min(settings.batch, len(anchors)), replace=False)
            a, c = anchors[pick], cands[pick]
            y = tf.forward(fit.x[a], keep=True)
            tc = fit.target[c]  # (b, k, d_old)
            est = fit.row_term[c] - fit.ip_scale * np.einsum("bd,bkd->bk", y, tc)
            s_logits = -est / (std[pick] * settings.temperature)
            s_prob = np.exp(s_logits - s_logits.max(1, keepdims=True))
            s_prob /= s_prob.sum(1, keepdims=True)
            g = (s_prob - t_prob[pick]) / len(a)  # d KL / d logit
            g = -g / (std[pick] * settings.temperature)  # d logit / d est = -1 / temp
            dy = -fit.ip_scale * np.einsum("bk,bkd->bd", g, tc)
            dy += (2.0 * settings.regression_weight / len(a)) * (y - fit.target[a])
            adam.step(params, tf.backward(dy.astype(np.float32)))
            bar.update(1)
            if (step + 1) % (settings.steps // checks) == 0:
                score = val.recall(every, tf)
                report[f"mlp_step{step + 1}"] = score
                if score > best[0] + _MARGIN:
                    best = (score, tf.copy())
    return best


class CompatibleQuantizer(Quantizer):
    """The old version's trained quantizer seen from the new model: ``encode`` and ``prepare`` take
    new-model vectors, map them into the old space, and use the old codes, so rows and queries of both
    versions share one code matrix. ``decode`` returns old-space vectors."""

    kind: ClassVar[str] = "compat"

    def __init__(self, base: Quantizer, mapping: CompatibilityMap) -> None:
        if mapping.dim_old != base.dim:
            raise ValueError(f"the map outputs {mapping.dim_old} dims but the quantizer takes {base.dim}")
        super().__init__(mapping.dim_new, base.metric)
        self.base, self.mapping = base, mapping

    def train(self, sample: np.ndarray) -> None:
        raise ValueError("a compatible quantizer reuses the old version's model: train that quantizer "
                         "and fit the map with fit_compatibility")

    @property
    def is_trained(self) -> bool:
        return self.base.is_trained

    @property
    def code_size(self) -> int:
        return self.base.code_size

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        return self.base.encode(self.mapping.apply(vectors))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self.base.decode(codes)

    def prepare(self, query: np.ndarray, *args: Any) -> Any:
        mapped = self.mapping.apply(np.asarray(query, dtype=np.float32).reshape(1, -1))[0]
        return self.base.prepare(mapped, *args)

    def distances(self, prepared: Any, codes: np.ndarray) -> np.ndarray:
        return self.base.distances(prepared, codes)

    def distances_at(self, prepared: Any, codes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        return self.base.distances_at(prepared, codes, offsets)

    def scan_layout(self, codes: np.ndarray) -> Any:
        return self.base.scan_layout(codes)

    def scan(self, prepared: Any, layout: Any) -> np.ndarray:
        return self.base.scan(prepared, layout)

    @property
    def nbytes(self) -> int:
        return self.base.nbytes + self.mapping.nbytes

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        base_meta, base_arrays = self.base.to_arrays()
        map_meta, map_arrays = self.mapping.to_arrays()
        arrays = {f"base.{k}": v for k, v in base_arrays.items()}
        arrays.update({f"map.{k}": v for k, v in map_arrays.items()})
        return {"kind": self.kind, "base": base_meta, "map": map_meta}, arrays

    @classmethod
    def from_arrays(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> CompatibleQuantizer:
        from vecdb.quant.factory import quantizer_from_arrays  # the factory registers this class

        base = quantizer_from_arrays(meta["base"], {k[5:]: v for k, v in arrays.items() if k.startswith("base.")})
        mapping = CompatibilityMap.from_arrays(meta["map"], {k[4:]: v for k, v in arrays.items()
                                                             if k.startswith("map.")})
        return cls(base, mapping)
