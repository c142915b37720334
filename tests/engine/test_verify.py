"""`vecdb verify`: a clean directory passes; damage is reported with the file; derived files warn."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

import vecdb
from vecdb.engine.verify import verify_directory
from vecdb.verify import verify


def make_directory(path):
    with vecdb.connect(path) as db:
        col = db.create_collection("c", dim=8, metric="l2", schema={"n": "int64"})
        col.upsert(np.arange(100), np.random.default_rng(0).standard_normal((100, 8)), {"n": np.arange(100)})
        col.optimize()
        col.delete([1, 2, 3])
        col.optimize()
        col.upsert([500], np.ones((1, 8)), {"n": [5]})
    return path


def test_clean_directory_passes(tmp_path):
    data = make_directory(tmp_path / "data")
    report = verify_directory(data)
    assert report.ok, report.errors
    assert any("2 segments (98 rows)" in line for line in report.checked), report.checked
    result = CliRunner().invoke(verify, [str(data)])
    assert result.exit_code == 0 and "no damage found" in result.output


def test_flipped_byte_in_a_segment_is_reported(tmp_path):
    data = make_directory(tmp_path / "data")
    segment = next((data / "collections" / "c" / "segments").glob("*.arrow"))
    raw = bytearray(segment.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    segment.write_bytes(bytes(raw))
    report = verify_directory(data)
    assert not report.ok
    assert any(segment.name in line for line in report.errors), report.errors
    result = CliRunner().invoke(verify, [str(data)])
    assert result.exit_code == 1 and "DAMAGED" in result.output


def test_damaged_wal_is_reported(tmp_path):
    data = make_directory(tmp_path / "data")
    with vecdb.connect(data) as db:  # leave records in the WAL: no checkpoint on this close path
        db.collection("c").upsert([600, 601], np.ones((2, 8)), {"n": [6, 7]})
        db.collection("c").upsert([602], np.ones((1, 8)), {"n": [8]})
        wal_files = sorted((data / "collections" / "c" / "wal").glob("*.wal"))
        snapshot = {p: p.read_bytes() for p in wal_files}
    for path, raw in snapshot.items():  # put the pre-checkpoint log back, with a flipped byte inside
        damaged = bytearray(raw)
        if len(damaged) > 40:
            damaged[20] ^= 0xFF
        path.write_bytes(bytes(damaged))
    report = verify_directory(data)
    assert not report.ok
    assert any(".wal" in line for line in report.errors), report.errors


def test_damaged_catalog_metadata_files_warn(tmp_path):
    """IDENTITY and rocksdict-config.json hold no stored data and carry no checksum of their own:
    verify compares them with what vecdb recorded and expects, and warns on any change."""
    data = make_directory(tmp_path / "data")
    assert verify_directory(data).warnings == []
    config = data / "catalog" / "rocksdict-config.json"
    config.write_bytes(config.read_bytes().replace(b"true", b"trve"))
    identity = data / "catalog" / "IDENTITY"
    raw = bytearray(identity.read_bytes())
    raw[0] ^= 0x02
    identity.write_bytes(bytes(raw))
    report = verify_directory(data)
    assert report.ok  # nothing stored is damaged
    assert any("rocksdict-config.json is damaged" in w for w in report.warnings), report.warnings
    assert any("IDENTITY" in w and "differs" in w for w in report.warnings), report.warnings
