"""`vecdb verify DIR`: check a data directory offline and report what it finds."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def verify(data_dir: Path) -> None:
    """Check checksums, manifests, index files and the WAL of DATA_DIR; exit 1 if data is damaged."""
    from vecdb.engine.verify import verify_directory

    report = verify_directory(data_dir)
    for line in report.checked:
        click.echo(f"ok       {line}")
    for line in report.warnings:
        click.echo(f"warning  {line}")
    for line in report.errors:
        click.echo(f"DAMAGED  {line}")
    click.echo("verify: " + ("no damage found" if report.ok else f"{len(report.errors)} problem(s) found"))
    sys.exit(0 if report.ok else 1)
