"""Embedding versions of a collection: compatibility maps from newer models into the collection's space.

A collection stores vectors (and codes) of the model it was created with. ``add`` fits a map from
another model's embeddings of some stored rows (``vecdb.quant.compat``) and keeps it in the catalog
under ``versions/<collection>`` (one JSON object: each version's metadata and its arrays, base64).
Upserts and searches that name a version are mapped into the collection's space on the way in, so
rows of both versions live in one index and one code matrix; the WAL records mapped rows, so replay
never needs the map.
"""

from __future__ import annotations

import base64
import re
import threading
from typing import Any

import numpy as np

from vecdb.errors import AlreadyExists, InvalidArgument, NotFound
from vecdb.quant.compat import CompatibilityMap, CompatSettings, fit_compatibility
from vecdb.storage.catalog import VERSIONS_PREFIX, Catalog

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _pack(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    return {name: {"shape": list(a.shape), "f32": base64.b64encode(np.ascontiguousarray(a, np.float32)).decode()}
            for name, a in arrays.items()}


def _unpack(packed: dict[str, Any]) -> dict[str, np.ndarray]:
    return {name: np.frombuffer(base64.b64decode(v["f32"]), dtype=np.float32).reshape(v["shape"]).copy()
            for name, v in packed.items()}


class EmbeddingVersions:
    """The versions of one collection, persisted in the catalog; thread-safe."""

    def __init__(self, catalog: Catalog, collection: str, dim: int, metric: str) -> None:
        self._catalog, self._key = catalog, VERSIONS_PREFIX + collection
        self._dim, self._metric = dim, metric
        self._lock = threading.Lock()
        stored = catalog.get(self._key) or {}
        self._entries: dict[str, dict[str, Any]] = stored
        self._maps = {name: CompatibilityMap.from_arrays(e["meta"], _unpack(e["arrays"])) for name, e in stored.items()}

    def add(self, version: str, new: np.ndarray, old: np.ndarray, normalize: bool) -> dict[str, Any]:
        """Fit and persist the map of ``version`` from paired rows: ``new`` (n, d) of the new model and
        ``old`` (n, dim), the stored vectors of the same ids. Returns its description."""
        version = check_version_name(version)
        with self._lock:
            if version in self._maps:
                raise AlreadyExists(f"embedding version {version!r} already exists; drop it first to refit")
        try:
            mapping, report = fit_compatibility(new, old, self._metric, new_unit=normalize,
                                                settings=CompatSettings(progress=False))
        except ValueError as exc:
            raise InvalidArgument(f"embedding version {version!r}: {exc}") from exc
        meta, arrays = mapping.to_arrays()
        entry = {"meta": meta, "arrays": _pack(arrays), "dim": mapping.dim_new, "normalize": normalize,
                 "fit_rows": int(new.shape[0]), "report": {k: round(v, 4) for k, v in report.items()}}
        with self._lock:
            if version in self._maps:
                raise AlreadyExists(f"embedding version {version!r} already exists; drop it first to refit")
            entries = {**self._entries, version: entry}
            self._catalog.commit({self._key: entries})
            self._entries, self._maps = entries, {**self._maps, version: mapping}
        return self._describe(version, entry)

    def drop(self, version: str) -> None:
        with self._lock:
            if version not in self._maps:
                raise NotFound(f"embedding version {version!r} does not exist")
            entries = {k: v for k, v in self._entries.items() if k != version}
            self._catalog.commit({self._key: entries or None})
            self._entries = entries
            self._maps = {k: v for k, v in self._maps.items() if k != version}

    def describe(self) -> dict[str, dict[str, Any]]:
        """{version: {"dim", "normalize", "fit_rows", "report"}}."""
        with self._lock:
            return {name: self._describe(name, e) for name, e in sorted(self._entries.items())}

    @staticmethod
    def _describe(name: str, entry: dict[str, Any]) -> dict[str, Any]:
        return {k: entry[k] for k in ("dim", "normalize", "fit_rows", "report")}

    def dim_of(self, version: str) -> int:
        return self._get(version).dim_new

    def map(self, version: str, vectors: np.ndarray) -> np.ndarray:
        """(n, dim of ``version``) float32 -> (n, collection dim) float32."""
        return self._get(version).apply(vectors)

    def _get(self, version: Any) -> CompatibilityMap:
        mapping = self._maps.get(version) if isinstance(version, str) else None
        if mapping is None:
            known = sorted(self._maps) or "none"
            raise NotFound(f"embedding version {version!r} does not exist (known: {known})")
        return mapping


def check_version_name(version: Any) -> str:
    if not isinstance(version, str) or not _NAME.match(version):
        raise InvalidArgument(f"embedding version names are 1-64 letters, digits, '_', '.', '-' (starting with a "
                              f"letter or digit), got {version!r}")
    return version
