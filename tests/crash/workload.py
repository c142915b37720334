"""A deterministic write workload for crash tests, and the model that checks what survived.

The workload is a seeded sequence of operations (upsert batches, deletes, optimize). A run prints
one line per acknowledged operation; after a crash the checker knows exactly which operations were
acknowledged and which single one may have been in flight, so it can demand: every acknowledged
write present byte for byte, every acknowledged delete absent, and the in-flight operation either
wholly applied or wholly absent (never a partial batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIM = 8
ID_SPACE = 400


@dataclass(frozen=True)
class Op:
    kind: str  # "upsert" | "delete" | "optimize"
    ids: tuple[int, ...] = ()
    version: int = 0


def vector_of(row_id: int, version: int) -> np.ndarray:
    """The vector a given version of a row holds: derivable by the checker, unique per version."""
    rng = np.random.default_rng(row_id * 100_003 + version)
    return rng.standard_normal(DIM).astype(np.float32)


def operations(seed: int, count: int) -> list[Op]:
    rng = np.random.default_rng(seed)
    ops = []
    for version in range(1, count + 1):
        roll = rng.random()
        if roll < 0.05:
            ops.append(Op("optimize"))
        elif roll < 0.25:
            doomed = rng.choice(ID_SPACE, size=rng.integers(1, 20), replace=False)
            ops.append(Op("delete", tuple(int(i) for i in doomed)))
        else:
            size = int(rng.choice([1, 5, 50]))
            ids = tuple(int(i) for i in rng.choice(ID_SPACE, size=size, replace=False))
            ops.append(Op("upsert", ids, version))
    return ops


def apply(model: dict[int, int], op: Op) -> None:
    """model: id -> version present."""
    if op.kind == "upsert":
        for i in op.ids:
            model[i] = op.version
    elif op.kind == "delete":
        for i in op.ids:
            model.pop(i, None)


def run(col, ops: list[Op], acknowledge) -> None:
    """Execute ``ops`` against a collection, calling ``acknowledge(index)`` after each returns."""
    for index, op in enumerate(ops):
        if op.kind == "upsert":
            ids = np.array(op.ids, np.int64)
            col.upsert(ids, np.stack([vector_of(i, op.version) for i in op.ids]), {"version": [op.version] * len(ids)})
        elif op.kind == "delete":
            col.delete(np.array(op.ids, np.int64))
        else:
            col.optimize()
        acknowledge(index)


def observed_state(col) -> dict[int, np.ndarray]:
    table = col.get(np.arange(ID_SPACE), include=("vector", "version"))
    vectors = table.column("vector").to_pylist()
    return {int(i): np.array(v, np.float32) for i, v in zip(table.column("id").to_pylist(), vectors, strict=True)}


def check(col, ops: list[Op], acked: int) -> None:
    """Assert the collection equals the model after ``acked`` ops, or after ``acked + 1`` (in flight)."""
    got = observed_state(col)
    candidates = []
    model: dict[int, int] = {}
    for op in ops[:acked]:
        apply(model, op)
    candidates.append(dict(model))
    if acked < len(ops):
        apply(model, ops[acked])
        candidates.append(dict(model))
    problems = []
    for cand in candidates:
        if set(got) != set(cand):
            missing = sorted(set(cand) - set(got))[:5]
            extra = sorted(set(got) - set(cand))[:5]
            problems.append(f"ids differ: missing {missing}, resurrected/extra {extra}")
            continue
        wrong = [i for i, v in cand.items() if got[i].tobytes() != vector_of(i, v).tobytes()]
        if wrong:
            problems.append(f"wrong bytes for ids {wrong[:5]}")
            continue
        return
    raise AssertionError(f"after {acked} acknowledged ops: " + " | ".join(problems))


def check_self_neighbours(col) -> None:
    """Every present id is its own nearest neighbour under exact search."""
    got = observed_state(col)
    if not got:
        return
    ids = np.array(sorted(got))
    queries = np.stack([got[i] for i in ids])
    res = col.search(queries, k=1, params={"exact": True})
    assert (res.ids[:, 0] == ids).all(), "an acknowledged row is not its own nearest neighbour"
