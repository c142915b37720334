"""Corruption injection: bit flips, truncations and zeroed ranges in every kind of file vecdb keeps.

A template directory (HNSW collection, several segments, a deletion bitmap, index files, an unsealed
WAL tail, the RocksDB catalog) is built once; each hypothesis example copies it, damages one file
and then demands one of:

- ``DataLoss`` at open whose message names the damaged file (or the catalog);
- ``verify_directory`` flags it (an error; a warning for derived files; a torn tail for a cut WAL)
  and the open either refuses with DataLoss or serves a state the model allows;
- the open succeeds and every row equals the model (derived files rebuilt, or bytes that carry no
  data, such as RocksDB's option file).

Anything else fails: another exception type (a crash) or a wrong answer nobody flagged. The WAL is
point-in-time: a cut tail looks like a torn write, so a state equal to the model after a prefix of
the operations is allowed there, and only there. ``VECDB_CORRUPTION_EXAMPLES`` (default 15) sets
the examples; ``VECDB_CORRUPTION_REPORT=path`` writes the detected/injected tallies as JSON (and,
in that report mode, tallies an undetected damage as ``UNDETECTED`` instead of stopping there).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vecdb
from tests.crash.workload import DIM, ID_SPACE, apply, observed_state, operations, run, vector_of
from vecdb.engine.database import Database
from vecdb.engine.store import StoreOptions
from vecdb.engine.verify import verify_directory
from vecdb.errors import DataLoss

EXAMPLES = int(os.environ.get("VECDB_CORRUPTION_EXAMPLES", "15"))
SEED, OPS = 3, 60
OPTIONS = StoreOptions(seal_bytes=4 << 10, max_segments=4, index_min_rows=16, background=False)
KINDS = ("wal", "segment", "deletes", "index", "catalog")
TALLY: Counter[str] = Counter()


def files_of(root: Path, kind: str) -> list[Path]:
    """The files of one kind in a data directory, sorted (so a drawn index is reproducible)."""
    seg = root / "collections" / "c" / "segments"
    pattern = {
        "wal": (root / "collections" / "c" / "wal", "*.wal"),
        "segment": (seg, "*.arrow"),
        "deletes": (seg, "*.del-*"),
        "index": (seg, "*.idx"),
        "catalog": (root / "catalog", "*"),
    }[kind]
    found = sorted(p for p in pattern[0].glob(pattern[1]) if p.stat().st_size)
    if kind == "catalog":  # the info LOG is prose for humans; the rest is the database
        found = [p for p in found if p.name != "LOG" and not p.name.startswith("LOG.")]
    return found


def model_states() -> list[dict[int, int]]:
    """Model after each prefix of the workload: id -> version."""
    model: dict[int, int] = {}
    states = [dict(model)]
    for op in operations(SEED, OPS):
        apply(model, op)
        states.append(dict(model))
    return states


def matches(got: dict[int, np.ndarray], state: dict[int, int]) -> bool:
    return set(got) == set(state) and all(got[i].tobytes() == vector_of(i, v).tobytes() for i, v in state.items())


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A closed data directory with every kind of file, and its model."""
    root = tmp_path_factory.mktemp("corruption") / "template"
    db = Database.open(root, options=OPTIONS)
    col = db.create_collection("c", dim=DIM, metric="l2", index=vecdb.HNSW(m=8, ef_construction=32),
                               schema={"version": "int64"})
    run(col, operations(SEED, OPS), lambda _i: None)
    db.close(checkpoint=False)  # leave records in the WAL past the manifest
    for kind in KINDS:
        assert files_of(root, kind), f"the template has no {kind} file"
    yield root
    if path := os.environ.get("VECDB_CORRUPTION_REPORT"):
        Path(path).write_text(json.dumps(dict(TALLY), indent=1, sort_keys=True) + "\n")


def damage(path: Path, how: str, where: float, length: int, bit: int) -> bool:
    """Flip a bit, cut the file, or zero a range at fraction ``where`` of it; False if nothing changed."""
    data = bytearray(path.read_bytes())
    off = min(int(where * len(data)), len(data) - 1)
    before = bytes(data)
    if how == "flip":
        data[off] ^= 1 << bit
    elif how == "truncate":
        del data[off:]
    else:
        data[off:off + length] = bytes(len(data[off:off + length]))
    path.write_bytes(bytes(data))
    return bytes(data) != before


def outcome(root: Path, victim: Path, kind: str, states: list[dict[int, int]]) -> str:
    """Open and verify a damaged directory; return how the damage was handled, or raise."""
    report = verify_directory(root)
    flagged = (not report.ok) or bool(report.warnings) or any("torn tail" in line for line in report.checked)
    try:
        db = Database.open(root, options=OPTIONS)
    except DataLoss as exc:
        named = victim.name in str(exc) or (kind == "catalog" and "catalog" in str(exc))
        assert named, f"DataLoss does not name {victim.name}: {exc}"
        return "refused"
    except vecdb.VecdbError as exc:
        # Known gap: a damaged catalog/CURRENT points RocksDB at a MANIFEST that does not exist, and
        # the catalog maps that IO error to FailedPrecondition, not DataLoss. Refused and named, so
        # counted as detected, but tallied apart (see docs/reliability.md).
        if kind == "catalog" and "catalog" in str(exc) and flagged:
            return f"refused-as-{type(exc).__name__}"
        raise
    try:
        got = observed_state(db.collection("c"))
        res = db.collection("c").search(np.stack(list(got.values())), k=1, params={"exact": True}) if got else None
    finally:
        db.close()
    if matches(got, states[-1]):
        assert res is None or (res.ids[:, 0] == np.array(list(got))).all()
        return "flagged-served-intact" if flagged else "intact"
    if kind == "wal" and flagged and any(matches(got, s) for s in states):
        return "point-in-time"
    raise AssertionError(f"silent wrong answer after damaging {victim.name}: {len(got)} rows, verify: {report}")


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), pick=st.integers(0, 1 << 16), how=st.sampled_from(("flip", "truncate", "zero")),
       where=st.floats(0.0, 1.0), length=st.integers(1, 64), bit=st.integers(0, 7))
def test_damage_is_detected_or_harmless(template: Path, tmp_path_factory: pytest.TempPathFactory, kind: str,
                                        pick: int, how: str, where: float, length: int, bit: int) -> None:
    """Any single damage: DataLoss naming the file, flagged by verify, rebuilt, or provably harmless."""
    root = tmp_path_factory.mktemp("damaged") / "data"
    shutil.copytree(template, root)
    candidates = files_of(root, kind)
    victim = candidates[pick % len(candidates)]
    if not damage(victim, how, where, length, bit):
        return
    try:
        result = outcome(root, victim, kind, model_states())
    except (AssertionError, vecdb.VecdbError):
        if not os.environ.get("VECDB_CORRUPTION_REPORT"):
            raise
        result = f"UNDETECTED({victim.name.split('-')[0]})"  # report mode: tally it, keep injecting
    TALLY["injected"] += 1
    TALLY[f"{kind}:{result}"] += 1
    if result != "intact" and not result.startswith("UNDETECTED"):
        TALLY["detected"] += 1
    elif result == "intact":  # which file took a damage that changed nothing vecdb reads
        TALLY[f"intact-file:{victim.name.split('-')[0]}"] += 1
    shutil.rmtree(root.parent, ignore_errors=True)


def test_template_is_sound(template: Path, tmp_path: Path) -> None:
    """The undamaged template verifies clean and (opened from a copy) holds exactly the model."""
    assert verify_directory(template).ok
    shutil.copytree(template, tmp_path / "data")
    with Database.open(tmp_path / "data", options=OPTIONS) as db:
        assert matches(observed_state(db.collection("c")), model_states()[-1])
    assert len(model_states()[-1]) <= ID_SPACE


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_damaged_index_files_are_rebuilt(template: Path, tmp_path: Path, how: str) -> None:
    """Index files are derived: every one damaged at once, the open rebuilds them and answers right."""
    root = tmp_path / "data"
    shutil.copytree(template, root)
    victims = files_of(root, "index")
    for victim in victims:
        assert damage(victim, how, 0.5, 1, 3)
    assert outcome(root, victims[0], "index", model_states()) == "flagged-served-intact"


def test_damaged_catalog_current_is_data_loss(template: Path, tmp_path: Path) -> None:
    """Flip a bit in the MANIFEST number inside catalog/CURRENT: the open must say DataLoss.

    Found by this suite (it was FailedPrecondition); fixed in ef6987f."""
    root = tmp_path / "data"
    shutil.copytree(template, root)
    current = root / "catalog" / "CURRENT"
    text = current.read_bytes()
    digit = text.rindex(b"5") if b"5" in text else len(text) - 2
    current.write_bytes(text[:digit] + bytes([text[digit] ^ 1]) + text[digit + 1:])
    with pytest.raises(DataLoss, match="catalog"):
        Database.open(root, options=OPTIONS).close()


def test_truncated_catalog_manifest_is_not_silent(template: Path, tmp_path: Path) -> None:
    """Cut catalog/MANIFEST-* in half: the open must refuse (DataLoss) rather than lose the collection.

    Found by this suite (the collection could vanish silently); fixed in ef6987f."""
    root = tmp_path / "data"
    shutil.copytree(template, root)
    (manifest,) = (root / "catalog").glob("MANIFEST-*")
    assert damage(manifest, "truncate", 0.5, 1, 0)
    try:
        with Database.open(root, options=OPTIONS) as db:
            assert db.list_collections() == ["c"], "the collection vanished without an error"
    except DataLoss:
        return
