"""Storage layer tests: I/O seam, WAL, segments, array files, catalog, lock."""
