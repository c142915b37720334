"""BEBR: multi-bit binary codes by recurrent residual binarization of a learned transform.

Encoding (``x`` (d,), metric-aware):
    x~ = x / |x| for cosine (else x);  v = x~ - mean;  u = v / |v|
    y = f(u) in R^D (D = dim_out; f = residual MLP over a near-orthogonal map, see ``bebr_model``)
    planes: b_0 = sign(y), b_t = sign(y - sum_{s<t} alpha_s b_s)  ->  y^ = sum_t alpha_t b_t
    (u >= 2: each row is coded against s * alpha for the grid scale s that best fits it, see
    ``bebr_model.code``; y^ stays in units of alpha and the factor a below absorbs s)
Row layout: u planes of w = ceil(D / 64) uint64 words (the kernels' bit-plane layout), then one 8-byte
word holding two float32 factors, so ``code_size = (u * w + 1) * 8``:
    a = |v| * gamma  with gamma = |y|^2 / <y^, y> (undoes sign coding's shrinkage, as RaBitQ does);
    b = |v|^2 for l2, -<mean, v> for ip / cosine (the exact part of the distance that depends on the row).
Distance estimate for a query q with p = q~ - mean:
    l2: |p|^2 + b - 2 a <g, y^>;  ip: -<q, mean> + b - a <g, y^>;  cosine: 1 + the ip form,
where g = |p| f(p / |p|) (asymmetric, fp32 query via ``bitplane_lut``) or the query's own code scaled by
|p| gamma_q (SDC, code-to-code via ``bitplane_ip_sym``). l2 data need not be normalised: norms live in b.
Whole-segment scans (``scan_layout`` + ``scan``) compute the same estimate through the 4-bit fast
scan: a symmetric query is decoded to values, so both modes become one uint8 table over nibbles of
the planes (``kernels.bitplane_fastscan_*``); ``distances`` keeps the exact kernels for random access.
Centring plus the two factors are why the estimate ranks well at 1 bit; the 8 bytes are counted in
``code_size``. A zero-norm row under cosine is an edge case the estimate does not special-case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from vecdb import kernels
from vecdb.quant.base import Quantizer
from vecdb.quant.bebr_model import Transform, code, pack_planes, unpack_planes
from vecdb.quant.bebr_train import Rows, Settings, fit_baseline, fit_learned, gamma, validation_size
from vecdb.types import check_metric

MODES = ("sdc", "asym")


@dataclass(frozen=True)
class BEBRQuery:
    """Per-query state. const: distance part shared by all rows; scale: 2 (l2) or 1.

    ``values`` (D,) float32 is the query side of ``<g, y^>``: g itself (asymmetric) or the query's
    decoded code (SDC). SDC also carries its planes (u, w) uint64 and weights (u,) for the exact
    code-to-code kernel. The tables are built on first use, since a query usually needs only one:
    ``lut`` (w*8, 256) float32 for the exact asymmetric kernel (random access: graph and posting-list
    candidates), and the fast-scan table ``scan_lut`` (u * ceil(D/4), 16) uint8 with
    ``<g, y^> ~ scan_bias + scan_scale * (sum of looked-up entries)`` (whole-segment scans).
    """

    mode: str
    const: float
    scale: float
    values: np.ndarray
    alphas: np.ndarray
    planes: np.ndarray | None = None
    weights: np.ndarray | None = None

    # Built lazily and kept in the instance dict by hand: functools.cached_property takes one lock
    # shared by every instance on Python 3.11, which would serialise concurrent searches.
    @property
    def lut(self) -> np.ndarray:
        return self._cached("lut", lambda: kernels.bitplane_lut(self.values))

    @property
    def query_sum(self) -> float:
        return self._cached("query_sum", lambda: float(self.values.sum()))

    @property
    def _scan_table(self) -> tuple[np.ndarray, float, float]:
        def build() -> tuple[np.ndarray, float, float]:
            lut, offset = kernels.bitplane_fastscan_lut(self.values, self.alphas)
            lut_u8, scale, bias = kernels.quantize_lut(lut)
            return lut_u8, scale, bias + offset

        return self._cached("scan_table", build)

    def _cached(self, name: str, build: Callable[[], Any]) -> Any:
        if name not in self.__dict__:  # a race builds the same value twice, harmlessly
            self.__dict__[name] = build()
        return self.__dict__[name]

    @property
    def scan_lut(self) -> np.ndarray:
        return self._scan_table[0]

    @property
    def scan_scale(self) -> float:
        return self._scan_table[1]

    @property
    def scan_bias(self) -> float:
        return self._scan_table[2]


@dataclass(frozen=True)
class BEBRLayout:
    """Codes rearranged once per segment for scans: the planes in the 4-bit fast-scan layout
    (``kernels.bitplane_fastscan_pack``, the same bytes), factors a and b (n,) float32."""

    packed: np.ndarray
    a: np.ndarray
    b: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.packed.nbytes + self.a.nbytes + self.b.nbytes)


class BEBRQuantizer(Quantizer):
    """BEBR codes with ``bits`` (u, 1..8) planes of ``dim_out`` bits; ``learned=False`` is the baseline
    (random orthogonal map, greedy weights) with the same bit budget. ``mode`` is the default scoring:
    "sdc" (query binarized too) or "asym" (fp32 query)."""

    kind: ClassVar[str] = "bebr"

    def __init__(
        self, dim: int, metric: str, bits: int = 4, dim_out: int | None = None, learned: bool = True,
        seed: int = 0, mode: str = "sdc", train_rows: int = 20000, settings: Settings | None = None,
    ) -> None:
        super().__init__(dim, check_metric(metric))
        if not 1 <= bits <= 8:
            raise ValueError(f"BEBR bits must be in 1..8, got {bits}")
        if dim < 1 or (dim_out is not None and dim_out < 1):
            raise ValueError(f"BEBR dimensions must be >= 1, got dim={dim}, dim_out={dim_out}")
        if mode not in MODES:
            raise ValueError(f"BEBR mode must be one of {MODES}, got {mode!r}")
        self.bits, self.dim_out = bits, dim_out or dim
        self.learned, self.seed, self.mode, self.train_rows = learned, seed, mode, train_rows
        self.settings = settings or Settings()
        self.words = (self.dim_out + 63) // 64
        self.mean: np.ndarray | None = None  # (d,) float32
        self.transform: Transform | None = None
        self.alphas: np.ndarray | None = None  # (u,) float32
        self.report: dict[str, float] = {}  # validation recall of each training stage

    # -- training -------------------------------------------------------------------------------

    def train(self, sample: np.ndarray) -> None:
        """Fit mean, transform and plane weights on ``sample`` (n, d) float32 (a seeded subsample of
        ``train_rows`` rows is used when larger; a learned model then also holds out up to 25,500 of
        the other rows to check each training stage against)."""
        x = self._unit(self._check(sample))
        if x.shape[0] == 0:
            raise ValueError("BEBR training needs at least one row")
        rng = np.random.default_rng(self.seed)
        held = x[:0]
        if x.shape[0] > self.train_rows:
            order = rng.permutation(x.shape[0])
            spare = validation_size(x.shape[0], self.train_rows) if self.learned else 0
            held = x[np.sort(order[self.train_rows : self.train_rows + spare])]
            x = x[np.sort(order[: self.train_rows])]
        # Centring is part of what is learned: the baseline stays data-oblivious (mean 0), like RaBitQ
        # without its centroid, while keeping the same per-row factors and bit budget.
        self.mean = x.mean(0).astype(np.float32) if self.learned else np.zeros(self.dim, np.float32)
        rows = self._rows(x)
        if self.learned:
            self.transform, self.alphas, self.report = fit_learned(
                rows, self.bits, self.dim_out, self.seed, self.settings,
                held_out=self._rows(held) if len(held) else None)
        else:
            self.transform, self.alphas = fit_baseline(rows, self.bits, self.dim_out, self.seed)

    @property
    def is_trained(self) -> bool:
        return self.alphas is not None

    @property
    def code_size(self) -> int:
        return (self.bits * self.words + 1) * 8

    # -- codes ----------------------------------------------------------------------------------

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """(n, d) float32 -> (n, code_size) uint8: bit planes then the float32 factors (a, b)."""
        tf, alphas, mean = self._model()
        v, norms, u = self._centre(self._unit(self._check(vectors)), mean)
        y = tf.apply(u)
        signs, recon = code(y, alphas)
        factors = np.stack([norms * gamma(y, recon), self._bias(v, norms, mean)], axis=1).astype(np.float32)
        n = v.shape[0]
        out = np.empty((n, self.code_size), dtype=np.uint8)
        out[:, : self.code_size - 8] = pack_planes(signs).view(np.uint8).reshape(n, -1)
        out[:, self.code_size - 8 :] = factors.view(np.uint8)
        return out

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(n, code_size) -> (n, d) float32 ``mean + a * y^ W^T`` (plus normalisation for cosine).

        Exact inverse of the linear part only: the MLP block (learned models) is not inverted, so
        decode is an approximation meant for inspection; scans never decode.
        """
        tf, alphas, mean = self._model()
        planes, a, _ = self._split(codes)
        recon = (unpack_planes(planes, self.dim_out) * alphas[None, :, None]).sum(1)
        return (mean[None, :] + a[:, None] * (recon @ tf.w.T)).astype(np.float32)

    def scan_layout(self, codes: np.ndarray) -> BEBRLayout:
        """Rearrange stored rows for ``scan`` (once per segment): planes to the fast-scan layout."""
        planes, a, b = self._split(codes)
        return BEBRLayout(kernels.bitplane_fastscan_pack(planes, self.dim_out), a, b)

    # -- search ---------------------------------------------------------------------------------

    def prepare(self, query: np.ndarray, mode: str | None = None) -> BEBRQuery:
        """Per-query state for ``mode`` ("sdc" or "asym"; default ``self.mode``). query: (d,) float32."""
        mode = mode or self.mode
        if mode not in MODES:
            raise ValueError(f"BEBR mode must be one of {MODES}, got {mode!r}")
        tf, alphas, mean = self._model()
        q = self._unit(self._check(np.asarray(query, dtype=np.float32).reshape(1, -1)))[0]
        p = q - mean
        pn = float(np.linalg.norm(p))
        if self.metric == "l2":
            const, scale = pn * pn, 2.0
        else:
            const, scale = (1.0 if self.metric == "cosine" else 0.0) - float(q @ mean), 1.0
        y = tf.apply((p / pn if pn > 0 else p)[None, :].astype(np.float32))
        if mode == "asym":
            return BEBRQuery(mode, const, scale, (pn * y[0]).astype(np.float32), alphas)
        signs, recon = code(y, alphas)
        factor = pn * float(gamma(y, recon)[0])
        weights = (alphas * factor).astype(np.float32)
        # the code's values sum_t weights_t * (+-1) are recon scaled (what bitplane_decode would give)
        values = (recon[0] * np.float32(factor)).astype(np.float32)
        return BEBRQuery(mode, const, scale, values, alphas, planes=pack_planes(signs)[0], weights=weights)

    def distances(self, prepared: BEBRQuery, codes: np.ndarray) -> np.ndarray:
        """Estimated distances (n,) float32 from a prepared query to stored codes, through the exact
        bit-plane kernels (any rows: the random-access path)."""
        _, alphas, _ = self._model()
        planes, a, b = self._split(codes)
        if prepared.mode == "sdc":
            ip = kernels.bitplane_ip_sym(prepared.planes, planes, prepared.weights, alphas, self.dim_out)
        else:
            ip = kernels.bitplane_ip_asym(prepared.lut, planes, alphas, prepared.query_sum)
        # The kernels return minus the inner product, so "+ scale * a * ip" subtracts it.
        return (prepared.const + b + np.float32(prepared.scale) * a * ip).astype(np.float32)

    def scan(self, prepared: BEBRQuery, layout: BEBRLayout) -> np.ndarray:
        """Estimated distances (n,) float32 to every row of a ``scan_layout``, by the 4-bit fast scan:
        the same estimate as ``distances`` up to the uint8 table's rounding (each of the m entries off
        by at most scan_scale / 2), for 3-8x less time; shortlists from it are re-ranked."""
        n = layout.a.shape[0]
        sums = kernels.pq4_fastscan(prepared.scan_lut, layout.packed, n)
        # const + b + scale * a * (bias + step * sums) in one pass over the rows: as a chain of numpy
        # temporaries this epilogue cost a quarter of the scan
        return kernels.fastscan_affine(sums, layout.a, layout.b, prepared.scale * prepared.scan_scale,
                                       prepared.scale * prepared.scan_bias, prepared.const)

    # -- persistence ----------------------------------------------------------------------------

    @property
    def nbytes(self) -> int:
        if self.transform is None or self.alphas is None or self.mean is None:
            return 0
        return sum(a.nbytes for a in self.transform.arrays().values()) + self.alphas.nbytes + self.mean.nbytes

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        tf, alphas, mean = self._model()
        meta = {
            "kind": self.kind, "dim": self.dim, "metric": self.metric, "bits": self.bits,
            "dim_out": self.dim_out, "learned": self.learned, "seed": self.seed, "mode": self.mode,
            "train_rows": self.train_rows, "report": dict(self.report),
        }
        arrays = {"mean": mean.copy(), "alphas": alphas.copy()}
        arrays.update({f"transform.{k}": v.copy() for k, v in tf.arrays().items()})
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> BEBRQuantizer:
        q = cls(
            int(meta["dim"]), str(meta["metric"]), bits=int(meta["bits"]), dim_out=int(meta["dim_out"]),
            learned=bool(meta["learned"]), seed=int(meta["seed"]), mode=str(meta["mode"]),
            train_rows=int(meta["train_rows"]),
        )
        params = {k.split(".", 1)[1]: np.ascontiguousarray(v, dtype=np.float32)
                  for k, v in arrays.items() if k.startswith("transform.")}
        if "w" not in params or params["w"].shape != (q.dim, q.dim_out):
            raise ValueError(f"BEBR arrays lack a ({q.dim}, {q.dim_out}) transform.w")
        q.transform = Transform(**params)
        q.alphas = np.ascontiguousarray(arrays["alphas"], dtype=np.float32)
        q.mean = np.ascontiguousarray(arrays["mean"], dtype=np.float32)
        if q.alphas.shape != (q.bits,) or q.mean.shape != (q.dim,):
            raise ValueError("BEBR arrays do not match the metadata's bits / dim")
        q.report = dict(meta.get("report", {}))
        return q

    # -- helpers --------------------------------------------------------------------------------

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected (n, {self.dim}) vectors, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("BEBR input contains NaN or infinite values")
        return x

    def _check_codes(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes)
        if codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1] != self.code_size:
            raise ValueError(f"expected (n, {self.code_size}) uint8 codes, got {codes.dtype} {codes.shape}")
        return codes

    def _split(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stored rows -> (planes (n, u, w) uint64 contiguous, a (n,), b (n,) float32)."""
        codes = self._check_codes(codes)
        n, split = codes.shape[0], self.code_size - 8
        planes = np.ascontiguousarray(codes[:, :split]).view(np.uint64).reshape(n, self.bits, self.words)
        factors = np.ascontiguousarray(codes[:, split:]).view(np.float32)
        return planes, np.ascontiguousarray(factors[:, 0]), np.ascontiguousarray(factors[:, 1])

    def _unit(self, x: np.ndarray) -> np.ndarray:
        if self.metric != "cosine":
            return x
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    @staticmethod
    def _centre(x: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(v = x - mean, |v|, v / |v| with 0 for a zero row)."""
        v = (x - mean[None, :]).astype(np.float32)
        norms = np.linalg.norm(v, axis=1).astype(np.float32)
        u = v / np.where(norms > 0, norms, 1.0)[:, None]
        return v, norms, u.astype(np.float32)

    def _rows(self, x: np.ndarray) -> Rows:
        """Input rows (already unit for cosine) as the trainer's ``Rows``, centred on ``self.mean``."""
        v, norms, u = self._centre(x, self.mean)
        return Rows(v, norms, u, self._bias(v, norms, self.mean), 2.0 if self.metric == "l2" else 1.0)

    def _bias(self, v: np.ndarray, norms: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """The exact row-dependent distance term: |v|^2 (l2) or -<mean, v> (ip / cosine)."""
        if self.metric == "l2":
            return (norms * norms).astype(np.float32)
        return (-(v @ mean)).astype(np.float32)

    def _model(self) -> tuple[Transform, np.ndarray, np.ndarray]:
        """(transform, plane weights, mean) of a trained quantizer; ValueError otherwise."""
        if self.transform is None or self.alphas is None or self.mean is None:
            raise ValueError("BEBR quantizer is not trained: call train() first")
        return self.transform, self.alphas, self.mean
