"""Training of BEBR transforms on the collection's own vectors (no labels), in numpy.

Three stages, each kept only if it raises recall@10 on held-out rows of the sample (model selection,
so the learned model is never worse than its starting point on that check):

1. a data-dependent rotation: alternate recurrent binarization and orthogonal Procrustes (ITQ's idea,
   extended to multi-bit residual codes), lowering the quantization error;
2. a residual MLP block fine-tuned end to end with a listwise distillation loss: for each anchor, the
   softmax over its true neighbours (plus random rows) of the *estimated code distance* must match the
   softmax of the true distance (an NCE-style contrastive objective), plus a reconstruction term;
   sign is crossed with a straight-through estimator; Adam with hand-written backprop;
3. joint least-squares plane weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from vecdb.quant.bebr_model import (
    Transform,
    binarize,
    code,
    derive_alphas,
    procrustes,
    random_orthogonal,
    refit_alphas,
)

# Sizes chosen so that training on 20k x 384 takes about a minute on 2 cores.
_VAL_QUERIES = 500
_VAL_BASE = 5000
# When the input has rows beyond the training sample, the check's base is drawn from them and can be
# far larger: ranking among 5,000 rows rewards coarser structure than a 100k-row collection needs
# (on MiniLM u=1 such a check kept a rotation that cost 0.01 recall@10 on the real queries; with
# 25,000 it rejected it). Scoring 500 queries against it costs a few seconds per stage.
_VAL_BASE_HELD_OUT = 25000
_ANCHORS = 4000
_NEIGHBOURS = 32
_RANDOM_NEGATIVES = 8
_MIN_ROWS_FOR_MLP = 1000
# A stage replaces the current model only if held-out recall@10 rises by more than this (noise guard).
_MARGIN = 0.003


@dataclass
class Rows:
    """The training sample in BEBR's space: v = x - mean (x unit for cosine), u = v / |v|."""

    v: np.ndarray  # (n, d) float32
    norms: np.ndarray  # (n,) float32
    u: np.ndarray  # (n, d) float32
    bias: np.ndarray  # (n,) float32: per-row additive term of the distance estimate
    scale: float  # 2 for l2 (-2<p,v>), 1 for ip / cosine (-<p,v>)

    def subset(self, idx: np.ndarray) -> Rows:
        return Rows(self.v[idx], self.norms[idx], self.u[idx], self.bias[idx], self.scale)

    def __len__(self) -> int:
        return self.u.shape[0]


@dataclass
class Settings:
    """Knobs of the learned fit (defaults sized for minutes on 2 cores)."""

    itq_iters: int = 8
    epochs: int = 2
    steps_per_epoch: int = 60
    batch: int = 64
    hidden: int = 128
    lr: float = 1e-3  # A1, c1 (pre-activations are O(1))
    lr_out: float = 1e-5  # A2, c2 and W: entries of y are O(1 / sqrt(D)), so steps must be tiny
    lr_w: float = 1e-5
    temperature: float = 0.2
    recon_weight: float = 1.0
    student: str = "asym"  # anchors scored as fp32 queries ("asym") or by their own codes ("sdc")
    progress: bool = True


def fit_baseline(rows: Rows, bits: int, dim_out: int, seed: int) -> tuple[Transform, np.ndarray]:
    """Non-learned: a random orthogonal map and greedy plane weights."""
    tf = Transform(random_orthogonal(rows.u.shape[1], dim_out, np.random.default_rng(seed)))
    return tf, derive_alphas(tf.apply(rows.u), bits)


def fit_learned(
    rows: Rows, bits: int, dim_out: int, seed: int, settings: Settings, held_out: Rows | None = None
) -> tuple[Transform, np.ndarray, dict[str, float]]:
    """Learned transform and plane weights; returns them with the validation recall of each stage.

    The validation rows (queries and their base) are held out of every fit, so a stage is kept only
    when it helps on rows it has not seen: ``held_out`` rows when given (see ``validation_size``),
    else a split of ``rows``.
    """
    rng = np.random.default_rng(seed)
    tf, alphas = fit_baseline(rows, bits, dim_out, seed)
    if len(rows) < _MIN_ROWS_FOR_MLP:  # too few rows to fit anything beyond the rotation
        tf = Transform(_itq(rows.u, tf.w, bits, settings.itq_iters, rng))
        return tf, derive_alphas(tf.apply(rows.u), bits), {}
    if held_out is not None and len(held_out) >= 2 * _VAL_QUERIES:
        val = _Validation.make(held_out.subset(np.arange(_VAL_QUERIES)),
                               held_out.subset(np.arange(_VAL_QUERIES, len(held_out))))
        fit = rows
    else:
        queries, base = held_out_split(len(rows), rng)
        val = _Validation.make(rows.subset(queries), rows.subset(base))
        fit = rows.subset(np.setdiff1d(np.arange(len(rows)), np.concatenate([queries, base])))
    score = val.recall(tf, alphas)
    report = {"random": score}
    best = (score, tf, alphas)

    tf = Transform(_itq(fit.u, tf.w, bits, settings.itq_iters, rng))
    alphas = derive_alphas(tf.apply(fit.u), bits)
    score = val.recall(tf, alphas)
    report["rotation"] = score
    if score > best[0] + _MARGIN:
        best = (score, tf, alphas)

    best = _fine_tune(fit, best, bits, seed, settings, val, report)
    _, tf, alphas = best
    refit = refit_alphas(tf.apply(_subsample(fit.u, 20000, rng)), alphas)
    score = val.recall(tf, refit)
    report["refit_alphas"] = score
    if score > best[0] + _MARGIN:
        best = (score, tf, refit)
    _, tf, alphas = best
    tf.cache = {}
    return tf, alphas, report


def validation_size(n_input: int, n_train: int) -> int:
    """How many of the input's rows beyond the training sample ``fit_learned`` should get as
    ``held_out`` (500 queries and up to 25,000 base rows; 0 when too few are left)."""
    spare = n_input - n_train
    return min(spare, _VAL_QUERIES + _VAL_BASE_HELD_OUT) if spare >= 2 * _VAL_QUERIES else 0


def _subsample(x: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    return x if x.shape[0] <= count else x[np.sort(rng.choice(x.shape[0], count, replace=False))]


def _itq(u: np.ndarray, w: np.ndarray, bits: int, iters: int, rng: np.random.Generator) -> np.ndarray:
    """Alternate: binarize u W, then W = the orthogonal map taking u closest to its codes."""
    sample = _subsample(u, 10000, rng)
    for _ in range(iters):
        y = sample @ w
        _, recon = binarize(y, derive_alphas(y, bits))
        w = procrustes(sample, recon)
    return w


@dataclass
class _Validation:
    """Held-out query rows against held-out base rows, with their exact neighbours."""

    queries: Rows
    base: Rows
    truth: np.ndarray  # (q, 10) positions into base

    @classmethod
    def make(cls, queries: Rows, base: Rows) -> _Validation:
        true = _true_distances(queries, base)
        return cls(queries, base, np.argsort(true, axis=1, kind="stable")[:, :10])

    def recall(self, tf: Transform, alphas: np.ndarray) -> float:
        """Mean of the SDC and asymmetric recall@10 of the code distance estimate."""
        yb, yq = tf.apply(self.base.u), tf.apply(self.queries.u)
        _, rb = code(yb, alphas)
        _, rq = code(yq, alphas)
        kb = self.base.norms * gamma(yb, rb)
        kq = self.queries.norms * gamma(yq, rq)
        bias = self.base.bias[None, :]
        scores = []
        for ip in ((kq[:, None] * (rq @ rb.T)), (self.queries.norms[:, None] * (yq @ rb.T))):
            est = bias - self.base.scale * kb[None, :] * ip
            scores.append(recall_at_10(est, self.truth))
        return float(np.mean(scores))


def held_out_split(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sorted row indices (queries, base) held out of a fit: up to 500 queries (a tenth of
    the rows) against up to 5,000 base rows (a quarter)."""
    perm = rng.permutation(n)
    nq = min(_VAL_QUERIES, n // 10)
    nb = min(_VAL_BASE, n // 4)
    return np.sort(perm[:nq]), np.sort(perm[nq : nq + nb])


def recall_at_10(estimates: np.ndarray, truth: np.ndarray) -> float:
    """Mean recall@10 of the 10 smallest ``estimates`` (q, b) per row against ``truth`` (q, 10)."""
    top = np.argsort(estimates, axis=1, kind="stable")[:, :10]
    return float(np.mean([len(np.intersect1d(a, b)) for a, b in zip(top, truth, strict=True)])) / 10.0


def gamma(y: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Per-row correction |y|^2 / <recon, y>: rescales the code so that <p, recon> * gamma estimates
    <p, y> without the shrinkage bias of sign coding (the RaBitQ estimator's idea). (n,) float32."""
    num = (y * y).sum(1)
    den = (recon * y).sum(1)
    ok = den > 1e-12 * np.maximum(num, 1e-30)
    return np.where(ok, num / np.where(ok, den, 1.0), 1.0).astype(np.float32)


def _true_distances(queries: Rows, base: Rows) -> np.ndarray:
    """Exact distances (up to a per-query constant) from each query row to each base row: (q, b)."""
    ip = queries.v @ base.v.T
    if base.scale == 2.0:  # l2: |v_b|^2 - 2 <v_q, v_b>
        return (base.norms**2)[None, :] - 2.0 * ip
    return base.bias[None, :] - ip  # ip / cosine: -<x_q, x_b> up to a constant


def _neighbour_pool(rows: Rows, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Anchors (a,), their candidates (a, k) = true top-k neighbours + random rows, and the distances."""
    n = rows.u.shape[0]
    anchors = np.sort(rng.choice(n, min(_ANCHORS, n), replace=False))
    k = min(_NEIGHBOURS, n - 2)
    cands = np.empty((len(anchors), k + _RANDOM_NEGATIVES), dtype=np.int64)
    for s in range(0, len(anchors), 512):
        block = anchors[s : s + 512]
        dist = _true_distances(rows.subset(block), rows)
        dist[np.arange(len(block)), block] = np.inf  # an anchor is not its own neighbour
        top = np.argpartition(dist, k, axis=1)[:, :k]
        cands[s : s + len(block), :k] = top
    cands[:, k:] = rng.integers(0, n, (len(anchors), _RANDOM_NEGATIVES))
    teacher = np.stack([_true_distances(rows.subset(anchors[i : i + 1]), rows.subset(cands[i]))[0]
                        for i in range(len(anchors))])
    return anchors, cands, teacher.astype(np.float32)


class Adam:
    """Adam with a learning rate per parameter (in place on the arrays)."""

    def __init__(self, params: dict[str, np.ndarray], lrs: dict[str, float]) -> None:
        self.lrs, self.t = lrs, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        b1, b2 = 0.9, 0.999
        for k, g in grads.items():
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            mhat = self.m[k] / (1 - b1**self.t)
            vhat = self.v[k] / (1 - b2**self.t)
            params[k] -= (self.lrs[k] * mhat / (np.sqrt(vhat) + 1e-8)).astype(np.float32)


def _fine_tune(
    rows: Rows, best: tuple[float, Transform, np.ndarray], bits: int, seed: int,
    settings: Settings, val: _Validation, report: dict[str, float],
) -> tuple[float, Transform, np.ndarray]:
    """Stage 2: residual MLP block + W trained on ``rows`` with the listwise distillation loss."""
    rng = np.random.default_rng(seed + 1)
    anchors, cands, teacher = _neighbour_pool(rows, rng)
    dim_out, hidden = best[1].w.shape[1], settings.hidden
    tf = Transform(
        best[1].w.copy(),
        # |h| ~ 1, so N(0, 2) entries give pre-activations of variance ~2 (He-style for unit inputs).
        a1=(rng.standard_normal((dim_out, hidden)) * np.sqrt(2.0)).astype(np.float32),
        c1=np.zeros(hidden, np.float32),
        a2=np.zeros((hidden, dim_out), np.float32),  # the block starts as the identity
        c2=np.zeros(dim_out, np.float32),
    )
    params = tf.arrays()
    lrs = {"w": settings.lr_w, "a1": settings.lr, "c1": settings.lr, "a2": settings.lr_out,
           "c2": settings.lr_out}
    adam = Adam(params, lrs)
    # Teacher logits are standardised per anchor so the temperature means the same on every data set.
    mean = teacher.mean(1, keepdims=True)
    std = teacher.std(1, keepdims=True) + 1e-12
    t_logits = -(teacher - mean) / (std * settings.temperature)
    t_prob = np.exp(t_logits - t_logits.max(1, keepdims=True))
    t_prob /= t_prob.sum(1, keepdims=True)
    alphas = best[2]
    total = settings.epochs * settings.steps_per_epoch
    with tqdm(total=total, desc=f"BEBR u={bits} fine-tune", disable=not settings.progress, leave=False) as bar:
        for _ in range(settings.epochs):
            for _ in range(settings.steps_per_epoch):
                pick = rng.choice(len(anchors), min(settings.batch, len(anchors)), replace=False)
                grads, loss = _step(rows, tf, alphas, anchors[pick], cands[pick], t_prob[pick],
                                    std[pick] * settings.temperature, settings)
                adam.step(params, grads)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
            alphas = derive_alphas(tf.apply(_subsample(rows.u, 20000, rng)), bits)
            score = val.recall(tf, alphas)
            report[f"mlp_epoch{len([k for k in report if k.startswith('mlp')])}"] = score
            if score > best[0] + _MARGIN:
                best = (score, tf.copy(), alphas.copy())
    return best


def _step(
    rows: Rows, tf: Transform, alphas: np.ndarray, anchors: np.ndarray, cands: np.ndarray,
    t_prob: np.ndarray, temp: np.ndarray, settings: Settings,
) -> tuple[dict[str, np.ndarray], float]:
    """One batch: forward, loss KL(teacher || student) + reconstruction, gradients (straight-through)."""
    b, k = cands.shape
    idx = np.concatenate([anchors, cands.ravel()])
    y = tf.forward(rows.u[idx], keep=True)
    _, yhat = binarize(y, alphas)
    scale = rows.norms[idx] * gamma(y, yhat)  # treated as constant (no gradient)
    if settings.student == "asym":  # the anchor is an fp32 query: its y is used as is, without gamma
        scale[:b] = rows.norms[anchors]
        yhat[:b] = y[:b]
    ya, yc = yhat[:b], yhat[b:].reshape(b, k, -1)
    ip = np.einsum("bd,bkd->bk", ya, yc)
    coef = rows.scale * scale[:b, None] * scale[b:].reshape(b, k)
    est = rows.bias[cands] - coef * ip
    s_logits = -est / temp
    s_prob = np.exp(s_logits - s_logits.max(1, keepdims=True))
    s_prob /= s_prob.sum(1, keepdims=True)
    loss = float((t_prob * (np.log(t_prob + 1e-12) - np.log(s_prob + 1e-12))).sum(1).mean())
    # d loss / d logit = (student - teacher) / b; logit = coef * ip / temp + const.
    c = (s_prob - t_prob) / b * coef / temp
    dy = np.empty_like(y)
    dy[:b] = np.einsum("bk,bkd->bd", c, yc)
    dy[b:] = (c[:, :, None] * ya[:, None, :]).reshape(b * k, -1)
    # Reconstruction: pull y towards its code (the code held fixed), normalised per row.
    diff = y - yhat
    loss += settings.recon_weight * float((diff * diff).sum(1).mean())
    dy += (2.0 * settings.recon_weight / len(idx)) * diff
    return tf.backward(dy.astype(np.float32)), loss
