"""Segments: round trip, zero-copy vector views, and damaged files -> DataLoss (never a crash)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from vecdb.errors import DataLoss, InvalidArgument
from vecdb.storage.io import FileIO
from vecdb.storage.io_faults import FaultyIO
from vecdb.storage.segment import SegmentFile, open_segment, vectors_view, write_segment


def _table(n: int = 300, d: int = 7, batches: int = 1) -> tuple[pa.Table, np.ndarray]:
    rng = np.random.default_rng(42)
    vecs = rng.standard_normal((n, d), dtype=np.float32)
    table = pa.table(
        {
            "id": np.arange(n, dtype=np.int64) * 3,
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), d),
            "lang": pa.array([["en", "fr", None][i % 3] for i in range(n)]),
            "tags": pa.array([[f"t{i % 5}"] * (i % 3) for i in range(n)], pa.list_(pa.string())),
        }
    )
    if batches > 1:
        step = -(-n // batches)
        table = pa.concat_tables([table.slice(i, step) for i in range(0, n, step)])
    return table, vecs


@pytest.fixture
def segment(tmp_path: Path) -> tuple[SegmentFile, pa.Table, np.ndarray]:
    table, vecs = _table()
    return write_segment(tmp_path / "000000000001.arrow", table, FileIO()), table, vecs


def test_round_trip_memory_mapped(segment: tuple[SegmentFile, pa.Table, np.ndarray]) -> None:
    seg, table, vecs = segment
    assert seg.num_rows == 300 and seg.nbytes == seg.path.stat().st_size
    back = open_segment(seg.path, seg.checksum)
    assert back.equals(table)
    view = vectors_view(back)
    assert view.dtype == np.float32 and view.shape == (300, 7) and not view.flags.writeable
    np.testing.assert_array_equal(view, vecs)
    mapped = back.column("vector").chunk(0).values.buffers()[1]
    assert np.shares_memory(view, np.frombuffer(mapped, dtype=np.float32))  # zero copy
    np.testing.assert_array_equal(vectors_view(back.slice(17, 5)), vecs[17:22])
    assert [p.name for p in seg.path.parent.iterdir()] == [seg.path.name]  # no temp file left


def test_multiple_batches_and_empty_tables(tmp_path: Path) -> None:
    table, vecs = _table(n=100, batches=3)
    seg = write_segment(tmp_path / "a.arrow", table, FileIO(), single_batch=False)
    back = open_segment(seg.path, seg.checksum)
    assert back.column("vector").num_chunks == 3
    np.testing.assert_array_equal(vectors_view(back), vecs)  # combined: one copy
    seg = write_segment(tmp_path / "b.arrow", table, FileIO())  # default: one record batch
    back = open_segment(seg.path, seg.checksum)
    assert back.column("vector").num_chunks == 1 and back.equals(table)
    view = vectors_view(back)
    mapped = back.column("vector").chunk(0).values.buffers()[1]
    assert np.shares_memory(view, np.frombuffer(mapped, dtype=np.float32))
    empty = write_segment(tmp_path / "e.arrow", table.slice(0, 0), FileIO())
    assert vectors_view(open_segment(empty.path, empty.checksum)).shape == (0, 7)


def test_vectors_view_rejects_wrong_columns() -> None:
    table, _ = _table(n=5)
    with pytest.raises(InvalidArgument, match="no column"):
        vectors_view(table, "nope")
    with pytest.raises(InvalidArgument, match="fixed_size_list<float32>"):
        vectors_view(table, "id")
    nulls = pa.table({"vector": pa.array([[1.0, 2.0], None], pa.list_(pa.float32(), 2))})
    with pytest.raises(InvalidArgument, match="null"):
        vectors_view(nulls)


def test_checksum_mismatch(segment: tuple[SegmentFile, pa.Table, np.ndarray]) -> None:
    seg, _, _ = segment
    data = bytearray(seg.path.read_bytes())
    data[len(data) // 2] ^= 0x01
    seg.path.write_bytes(bytes(data))
    with pytest.raises(DataLoss, match=rf"{seg.path}: checksum mismatch"):
        open_segment(seg.path, seg.checksum)


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.1, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("with_checksum", [True, False])
def test_truncated_segment(
    segment: tuple[SegmentFile, pa.Table, np.ndarray], fraction: float, with_checksum: bool
) -> None:
    seg, _, _ = segment
    data = seg.path.read_bytes()
    seg.path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(DataLoss, match=str(seg.path)) as info:
        open_segment(seg.path, seg.checksum if with_checksum else None)
    assert "truncated" in str(info.value) or "not an Arrow file" in str(info.value)


def test_garbled_segment_without_checksum_is_validated(tmp_path: Path) -> None:
    """Without a checksum, a flipped byte anywhere gives DataLoss or a table that is safe to read."""
    table, _ = _table(n=50)
    seg = write_segment(tmp_path / "s.arrow", table, FileIO())
    data = seg.path.read_bytes()
    rng = np.random.default_rng(7)
    outcomes = {"detected": 0, "valid": 0}
    for i, off in enumerate(rng.choice(len(data), size=60, replace=False)):
        damaged = bytearray(data)
        damaged[off] ^= 0xFF
        path = tmp_path / f"g{i}.arrow"  # a fresh file: never rewrite a file that may still be mapped
        path.write_bytes(bytes(damaged))
        try:
            back = open_segment(path, None)
        except DataLoss as exc:
            assert str(path) in str(exc)
            outcomes["detected"] += 1
            continue
        back.validate(full=True)  # what opened is structurally sound (e.g. a flip inside a float)
        back.to_pylist()
        outcomes["valid"] += 1
    assert outcomes["detected"] > 0


def test_checksum_catches_every_flip(tmp_path: Path) -> None:
    table, _ = _table(n=50)
    seg = write_segment(tmp_path / "s.arrow", table, FileIO())
    data = seg.path.read_bytes()
    for off in range(0, len(data), max(1, len(data) // 97)):
        damaged = bytearray(data)
        damaged[off] ^= 0x10
        seg.path.write_bytes(bytes(damaged))
        with pytest.raises(DataLoss, match=str(seg.path)):
            open_segment(seg.path, seg.checksum)


def test_not_an_arrow_file_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "x.arrow"
    path.write_bytes(b"PAR1" + bytes(100))
    with pytest.raises(DataLoss, match="not an Arrow file"):
        open_segment(path, None)
    path.write_bytes(b"")
    with pytest.raises(DataLoss, match="not an Arrow file"):
        open_segment(path, 0)
    with pytest.raises(DataLoss, match="missing"):
        open_segment(tmp_path / "nope.arrow", 1)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    table, _ = _table()
    with pytest.raises(Exception, match="disk full"):
        write_segment(tmp_path / "s.arrow", table, FaultyIO(fail_after_bytes=1000))
    assert list(tmp_path.iterdir()) == []
