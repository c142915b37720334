"""Offline consistency check of a data directory: what `vecdb verify DIR` reports.

Reads everything, changes nothing: the catalog (every value decoded), each collection's manifest,
every segment it names (checksum and Arrow structure), deletion bitmaps (checksum, row count),
index files (checksum; they are derived, so a bad one is a warning: it will be rebuilt), the
quantizer, and the WAL (framing, CRCs, LSN continuity past the manifest's LSN).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vecdb.errors import DataLoss, VecdbError
from vecdb.storage.arrayfile import read_array_file
from vecdb.storage.catalog import IDENTITY_KEY, Catalog, metadata_problems, read_metadata_files
from vecdb.storage.layout import DataDirLayout
from vecdb.storage.lock import DirectoryLock
from vecdb.storage.segment import open_segment
from vecdb.storage.wal import check_log


@dataclass
class Report:
    """Findings: ``errors`` mean data is damaged; ``warnings`` are derived files that will be rebuilt."""

    checked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def verify_directory(root: Path | str) -> Report:
    """Check the data directory at ``root`` (it must not be open in another process)."""
    layout = DataDirLayout(root)
    report = Report()
    if not layout.catalog_dir.exists():
        report.errors.append(f"{layout.catalog_dir}: no catalog: not a vecdb data directory")
        return report
    with DirectoryLock(layout.lock_file):
        metadata = read_metadata_files(layout.catalog_dir)  # before opening rewrites one of them
        try:
            catalog = Catalog(layout.catalog_dir)
        except VecdbError as exc:
            report.errors.append(f"catalog: {exc}")
            return report
        try:
            report.checked.append(f"catalog: {catalog.verify()} keys")
            report.warnings.extend(f"catalog: {problem} (metadata only: no stored data depends on it)"
                                   for problem in metadata_problems(metadata, catalog.get(IDENTITY_KEY)))
            for name in catalog.list_collections():
                _verify_collection(layout, catalog, name, report)
        finally:
            catalog.close()
    return report


def _verify_collection(layout: DataDirLayout, catalog: Catalog, name: str, report: Report) -> None:
    manifest = catalog.get_manifest(name) or {}
    seg_dir = layout.segments_dir(name)
    rows = 0
    for entry in manifest.get("segments", []):
        path = layout.segment_path(name, int(entry["id"]))
        try:
            table = open_segment(path, int(entry["checksum"]), verify=True)
            rows += table.num_rows
        except DataLoss as exc:
            report.errors.append(f"{name}: {exc}")
            continue
        if entry.get("deletes"):
            _check_arrays(seg_dir / entry["deletes"], report, name, derived=False)
    for index_file in sorted(seg_dir.glob("*.idx")) if seg_dir.exists() else []:
        _check_arrays(index_file, report, name, derived=True)
    quantizer = layout.collection_dir(name) / "quantizer.arrays"
    if quantizer.exists():
        _check_arrays(quantizer, report, name, derived=True)
    try:
        log = check_log(layout.wal_dir(name), int(manifest.get("lsn", 0)))
        tail = f", torn tail at {log.torn_tail}" if log.torn_tail else ""
        report.checked.append(
            f"{name}: {len(manifest.get('segments', []))} segments ({rows} rows), WAL {log.records} records{tail}"
        )
    except DataLoss as exc:
        report.errors.append(f"{name}: {exc}")


def _check_arrays(path: Path, report: Report, name: str, *, derived: bool) -> None:
    try:
        read_array_file(path, mmap=False)
    except DataLoss as exc:
        (report.warnings if derived else report.errors).append(
            f"{name}: {exc}" + (" (derived: rebuilt at next open)" if derived else "")
        )
