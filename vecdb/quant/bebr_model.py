"""BEBR's pieces that training and coding share: the residual-MLP transform and recurrent binarization.

The transform maps a unit vector ``u`` (d,) to ``y`` (D,): ``h = u W`` then one residual MLP block
``y = h + relu(h A1 + c1) A2 + c2``. ``W`` starts as a random orthogonal map; with ``A2 = 0`` the
block is the identity, which is exactly the non-learned baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vecdb import kernels

# Rows pushed through the transform at once when encoding: bounds temporaries to a few tens of MB.
_BLOCK = 16384
# Per-row grid scales tried when coding with u >= 2 planes (``code``): the plane weights are shared,
# but each row picks the multiple of them whose levels fit its own spread best. 25 steps over 4x
# cover the spread of unit rows' coordinates after the transform; a finer grid gained nothing.
RESCALE_GRID = np.geomspace(0.5, 2.0, 25).astype(np.float32)


@dataclass
class Transform:
    """W: (d, D); optional residual block A1: (D, H), c1: (H,), A2: (H, D), c2: (D,); all float32."""

    w: np.ndarray
    a1: np.ndarray | None = None
    c1: np.ndarray | None = None
    a2: np.ndarray | None = None
    c2: np.ndarray | None = None
    cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def has_mlp(self) -> bool:
        return self.a1 is not None

    def arrays(self) -> dict[str, np.ndarray]:
        """Named parameters (for persistence and Adam)."""
        out = {"w": self.w}
        if self.has_mlp:
            out.update(a1=self.a1, c1=self.c1, a2=self.a2, c2=self.c2)  # type: ignore[arg-type]
        return out

    def copy(self) -> Transform:
        return Transform(**{k: v.copy() for k, v in self.arrays().items()})

    def forward(self, u: np.ndarray, keep: bool = False) -> np.ndarray:
        """u: (n, d) float32 -> y: (n, D) float32. ``keep`` stores activations for ``backward``."""
        h = u @ self.w
        if not self.has_mlp:
            if keep:
                self.cache = {"u": u}
            return h
        z = h @ self.a1 + self.c1
        act = np.maximum(z, 0.0)
        if keep:
            self.cache = {"u": u, "h": h, "z": z, "act": act}
        return h + act @ self.a2 + self.c2

    def backward(self, dy: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of the parameters given dL/dy (n, D), for the last ``forward(keep=True)``."""
        c = self.cache
        if not self.has_mlp:
            return {"w": c["u"].T @ dy}
        d_act = dy @ self.a2.T  # type: ignore[union-attr]
        dz = d_act * (c["z"] > 0)
        dh = dy + dz @ self.a1.T  # type: ignore[union-attr]
        return {
            "w": c["u"].T @ dh, "a1": c["h"].T @ dz, "c1": dz.sum(0),
            "a2": c["act"].T @ dy, "c2": dy.sum(0),
        }

    def apply(self, u: np.ndarray) -> np.ndarray:
        """``forward`` in row blocks (no caching) -> (n, D) float32."""
        out = np.empty((u.shape[0], self.w.shape[1]), dtype=np.float32)
        for s in range(0, u.shape[0], _BLOCK):
            out[s : s + _BLOCK] = self.forward(u[s : s + _BLOCK])
        return out


def random_orthogonal(d: int, dim_out: int, rng: np.random.Generator) -> np.ndarray:
    """(d, dim_out) float32 with orthonormal rows (d <= dim_out) or columns (d > dim_out)."""
    size = max(d, dim_out)
    q, r = np.linalg.qr(rng.standard_normal((size, size)))
    q *= np.sign(np.diag(r))[None, :]  # makes the draw uniform (Haar) and seed-stable
    return np.ascontiguousarray(q[:d, :dim_out], dtype=np.float32)


def procrustes(u: np.ndarray, target: np.ndarray) -> np.ndarray:
    """argmin over W with orthonormal rows/columns of ||u W - target||: (d, D) float32."""
    a, _, bt = np.linalg.svd(u.T.astype(np.float64) @ target.astype(np.float64), full_matrices=False)
    return np.ascontiguousarray(a @ bt, dtype=np.float32)


def binarize(y: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Recurrent residual binarization (``kernels.binarize``): plane t is the sign of y minus planes
    0..t-1's reconstruction. y: (n, D), alphas: (u,) -> (signs (n, u, D) bool, reconstruction (n, D))."""
    return kernels.binarize(np.asarray(y, dtype=np.float32), np.asarray(alphas, dtype=np.float32))


def code(y: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How rows are coded: ``binarize`` with each row's best grid scale (``RESCALE_GRID``) when there
    are several planes (one plane is the sign, which no scale changes). The reconstruction is in
    units of ``alphas``; the per-row factor of the code absorbs the chosen scale."""
    if len(alphas) == 1:
        return binarize(y, alphas)
    return kernels.binarize(np.asarray(y, dtype=np.float32), np.asarray(alphas, dtype=np.float32), RESCALE_GRID)


def derive_alphas(y: np.ndarray, bits: int) -> np.ndarray:
    """Plane weights alpha_t = alpha_0 / 2^t (so the u planes form a uniform 2^u-level quantizer per
    coordinate), with alpha_0 chosen on a grid to minimise the reconstruction error of ``y``.

    (Greedy weights alpha_t = mean |residual_t| stall after a few planes; halving keeps every extra
    plane useful.) A deterministic strided subsample of about 2048 rows drives the search.
    """
    sample = y[:: max(1, y.shape[0] // 2048)].astype(np.float32)
    base = max(float(np.abs(sample).mean()), 1e-12)
    halving = 0.5 ** np.arange(bits, dtype=np.float32)
    best, best_err = halving * base, np.inf
    for factor in np.linspace(0.25, 3.5, 53, dtype=np.float32):
        alphas = (halving * base * factor).astype(np.float32)
        err = _recon_error(sample, alphas)
        if err < best_err:
            best, best_err = alphas, err
    return best


def refit_alphas(y: np.ndarray, alphas: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Joint least-squares plane weights: alternate binarizing and solving the (u, u) normal equations.

    Returns the weights with the lowest reconstruction error seen (the greedy start included).
    """
    best, best_err = alphas.astype(np.float32), _recon_error(y, alphas)
    current = best
    for _ in range(rounds):
        signs, _ = binarize(y, current)
        s = np.where(signs, 1.0, -1.0).astype(np.float32)  # (n, u, D)
        gram = np.einsum("nud,nvd->uv", s, s, optimize=True).astype(np.float64)
        rhs = np.einsum("nud,nd->u", s, y, optimize=True).astype(np.float64)
        try:
            sol = np.linalg.solve(gram + 1e-9 * np.eye(len(alphas)), rhs)
        except np.linalg.LinAlgError:
            break
        if not np.all(sol > 0):  # a negative weight would flip the residual recursion's meaning
            break
        current = sol.astype(np.float32)
        err = _recon_error(y, current)
        if err < best_err:
            best, best_err = current, err
    return best


def _recon_error(y: np.ndarray, alphas: np.ndarray) -> float:
    _, recon = binarize(y, alphas)
    return float(((y - recon) ** 2).sum(1).mean())


def pack_planes(signs: np.ndarray) -> np.ndarray:
    """(n, u, D) bool -> (n, u, w) uint64 bit planes in the kernels' layout."""
    n, u, dim = signs.shape
    return kernels.pack_bits(signs.reshape(n * u, dim)).reshape(n, u, -1)


def unpack_planes(planes: np.ndarray, dim: int) -> np.ndarray:
    """(n, u, w) uint64 -> (n, u, dim) float32 of +-1."""
    n, u, w = planes.shape
    as_bytes = np.ascontiguousarray(planes).view(np.uint8).reshape(n * u, w * 8)
    bits = np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :dim]
    return (bits.astype(np.float32) * 2.0 - 1.0).reshape(n, u, dim)
