"""The ``vecdb`` command line: serve, import, collections, health, info (+ bench and verify when present).

Settings of ``vecdb serve`` come from, highest first: flags, ``VECDB_*`` environment variables,
the TOML file given by ``--config`` (top level or a ``[server]`` table), then defaults.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from vecdb.rpc.limits import MIB, Limits

DEFAULT_TARGET = "grpc://127.0.0.1:50051"


def _load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Eager callback of --config: the TOML file becomes the command's default_map (below env and flags)."""
    if not value:
        return value
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        data = tomllib.loads(Path(value).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise click.BadParameter(f"cannot read {value}: {exc}") from None
    table = data.get("server", data)
    known = {p.name for p in ctx.command.params if p.name}
    defaults: dict[str, Any] = {}
    for key, setting in table.items():
        name = key.replace("-", "_")
        if name not in known or name == "config":
            raise click.BadParameter(f"unknown setting {key!r} in {value}")
        defaults[name] = setting
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


# Commands owned by other modules: name -> (module, attribute names to try). They are imported only
# when used, so `vecdb serve` and `vecdb health` (the container HEALTHCHECK) start fast, and a
# module that fails to import cannot take the other commands down.
EXTERNAL_COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bench": ("vecdb.bench.cli", ("bench", "main", "cli")),
    "verify": ("vecdb.verify", ("verify", "main")),
}


class LazyGroup(click.Group):
    """A click group that adds the EXTERNAL_COMMANDS whose modules exist, on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        external = [name for name, (module, _) in EXTERNAL_COMMANDS.items() if _module_exists(module)]
        return sorted({*super().list_commands(ctx), *external})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in EXTERNAL_COMMANDS:
            # Not cached here: Python caches the module, and the group stays as declared.
            command = _load_external(cmd_name, *EXTERNAL_COMMANDS[cmd_name])
        return command


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a missing parent package
        return False


def _load_external(name: str, module_name: str, attributes: tuple[str, ...]) -> click.Command | None:
    if not _module_exists(module_name):
        return None
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        error = exc

        @click.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
        def broken() -> None:
            raise click.ClickException(f"{name} is unavailable: importing {module_name} failed: {error!r}")

        return broken
    for attr in attributes:
        command = getattr(module, attr, None)
        if isinstance(command, click.Command):
            return command
    return None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vecdb")
@click.option(
    "--log-level",
    default="INFO",
    envvar="VECDB_LOG_LEVEL",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def main(log_level: str) -> None:
    """vecdb: a vector database, embedded or served over gRPC."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    envvar="VECDB_CONFIG",
    is_eager=True,
    expose_value=False,
    callback=_load_config,
    help="TOML settings file (below env and flags).",
)
@click.option("--data-dir", default="./vecdb-data", envvar="VECDB_DATA_DIR", show_default=True)
@click.option(
    "--host",
    default="127.0.0.1",
    envvar="VECDB_HOST",
    show_default=True,
    help="Address to bind; anything but loopback without --api-keys logs a warning.",
)
@click.option("--port", default=50051, type=int, envvar="VECDB_PORT", show_default=True, help="0 = any free port.")
@click.option(
    "--port-file",
    type=click.Path(dir_okay=False),
    envvar="VECDB_PORT_FILE",
    help="Write the bound port here once listening (for --port 0).",
)
@click.option("--metrics-port", type=int, envvar="VECDB_METRICS_PORT", help="Serve Prometheus /metrics here.")
@click.option(
    "--api-keys",
    type=click.Path(exists=True, dir_okay=False),
    envvar="VECDB_API_KEYS",
    help="TOML file of API keys; without it the server is open.",
)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), envvar="VECDB_TLS_CERT")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), envvar="VECDB_TLS_KEY")
@click.option(
    "--tls-ca",
    type=click.Path(exists=True, dir_okay=False),
    envvar="VECDB_TLS_CA",
    help="CA of client certificates: turns on mutual TLS.",
)
@click.option("--reflection/--no-reflection", default=False, envvar="VECDB_REFLECTION", show_default=True)
@click.option("--workers", default=16, type=int, envvar="VECDB_WORKERS", show_default=True)
@click.option(
    "--grace-seconds",
    default=30.0,
    type=float,
    envvar="VECDB_GRACE_SECONDS",
    show_default=True,
    help="How long SIGTERM waits for in-flight calls.",
)
@click.option("--max-message-mb", default=64, type=int, envvar="VECDB_MAX_MESSAGE_MB", show_default=True)
@click.option(
    "--max-batch-rows",
    default=Limits.max_batch_rows,
    type=int,
    envvar="VECDB_MAX_BATCH_ROWS",
    show_default=True,
)
@click.option("--max-queries", default=Limits.max_queries, type=int, envvar="VECDB_MAX_QUERIES", show_default=True)
@click.option("--max-k", default=Limits.max_k, type=int, envvar="VECDB_MAX_K", show_default=True)
@click.option(
    "--max-concurrent-rpcs",
    default=Limits.max_concurrent_rpcs,
    type=int,
    envvar="VECDB_MAX_CONCURRENT_RPCS",
    show_default=True,
)
def serve(**options: Any) -> None:
    """Serve a data directory over gRPC until SIGTERM/SIGINT (then drain, fsync, close)."""
    from vecdb.errors import VecdbError
    from vecdb.rpc import server

    try:
        server.run(settings_from_options(options))
    except VecdbError as exc:  # a bad key file, a busy port, a corrupt data directory...
        _fail(exc)


def settings_from_options(options: dict[str, Any]) -> Any:
    """``vecdb serve``'s parsed options -> ``ServerSettings``."""
    from vecdb.rpc.server import ServerSettings

    opts = dict(options)
    try:
        limits = Limits(
            max_message_bytes=int(opts.pop("max_message_mb")) * MIB,
            max_batch_rows=int(opts.pop("max_batch_rows")),
            max_queries=int(opts.pop("max_queries")),
            max_k=int(opts.pop("max_k")),
            max_concurrent_rpcs=int(opts.pop("max_concurrent_rpcs")),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return ServerSettings(limits=limits, **opts)


# ---------------------------------------------------------------- connecting to a target


def _target_options(func: Any) -> Any:
    func = click.option("--api-key", envvar="VECDB_API_KEY", help="Bearer key for a grpc:// target.")(func)
    func = click.option(
        "--tls-ca",
        type=click.Path(exists=True, dir_okay=False),
        envvar="VECDB_TLS_CA",
        help="CA bundle: connect with TLS.",
    )(func)
    func = click.option(
        "--target",
        default=DEFAULT_TARGET,
        envvar="VECDB_TARGET",
        show_default=True,
        help="grpc://host:port of a server, or a data directory to open embedded.",
    )(func)
    return func


def open_target(target: str, api_key: str | None = None, tls_ca: str | None = None) -> Any:
    """A database handle for a grpc:// URI (client) or a directory (embedded engine)."""
    if target.startswith(("grpc://", "grpcs://")):
        from vecdb.rpc.client import connect_remote

        return connect_remote(target, api_key=api_key, tls=tls_ca)
    from vecdb.engine.database import Database

    return Database.open(target)


def _fail(exc: Exception) -> None:
    raise click.ClickException(f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------- import


def _read_batches(path: Path, batch_rows: int, dataset: str) -> tuple[int | None, Iterator[Any]]:
    """(total rows if known, iterator of pyarrow Tables with id/vector[/attribute] columns)."""
    import numpy as np
    import pyarrow as pa

    suffix = path.suffix.lower()
    if suffix == ".npy":
        matrix = np.load(path, mmap_mode="r")
        if matrix.ndim != 2:
            raise click.BadParameter(f"{path} holds shape {matrix.shape}, expected (n, dim)")
        return matrix.shape[0], _matrix_batches(matrix, batch_rows)
    if suffix in (".hdf5", ".h5"):
        import h5py

        handle = h5py.File(path, "r")
        if dataset not in handle:
            names = sorted(handle)
            handle.close()
            raise click.BadParameter(f"{path} has no dataset {dataset!r} (has {names})")
        return handle[dataset].shape[0], _closing(_matrix_batches(handle[dataset], batch_rows), handle)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        pfile = pq.ParquetFile(path)
        batches = (pa.Table.from_batches([b]) for b in pfile.iter_batches(batch_size=batch_rows))
        return pfile.metadata.num_rows, _with_ids(batches)
    if suffix in (".arrow", ".feather", ".ipc", ".arrows"):
        try:
            reader = pa.ipc.open_file(pa.memory_map(str(path)))
            total = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
            batches = (pa.Table.from_batches([reader.get_batch(i)]) for i in range(reader.num_record_batches))
        except pa.ArrowInvalid:
            total, batches = (
                None,
                (pa.Table.from_batches([b]) for b in pa.ipc.open_stream(pa.memory_map(str(path)))),
            )
        return total, _with_ids(_rebatch(batches, batch_rows))
    raise click.BadParameter(f"unsupported file type {suffix!r}: use .parquet, .arrow, .npy or .hdf5")


def _matrix_batches(matrix: Any, batch_rows: int) -> Iterator[Any]:
    import numpy as np
    import pyarrow as pa

    for start in range(0, matrix.shape[0], batch_rows):
        block = np.ascontiguousarray(matrix[start : start + batch_rows], dtype=np.float32)
        flat = pa.array(block.reshape(-1), type=pa.float32())
        yield pa.table(
            {
                "id": pa.array(np.arange(start, start + block.shape[0], dtype=np.int64)),
                "vector": pa.FixedSizeListArray.from_arrays(flat, block.shape[1]),
            }
        )


def _closing(batches: Iterator[Any], handle: Any) -> Iterator[Any]:
    """Yield from ``batches``, then close ``handle`` (also when the consumer stops early)."""
    try:
        yield from batches
    finally:
        handle.close()


def _rebatch(tables: Iterator[Any], batch_rows: int) -> Iterator[Any]:
    for table in tables:
        for start in range(0, table.num_rows, batch_rows):
            yield table.slice(start, batch_rows)


def _with_ids(tables: Iterator[Any]) -> Iterator[Any]:
    """Number rows 0.. when a table file has no "id" column."""
    import numpy as np

    offset = 0
    for table in tables:
        if "id" not in table.column_names:
            table = table.add_column(0, "id", [np.arange(offset, offset + table.num_rows, dtype=np.int64)])
        offset += table.num_rows
        yield table


def _vector_dim(table: Any) -> int:
    import pyarrow as pa

    column = table.column("vector").type
    if pa.types.is_fixed_size_list(column):
        return int(column.list_size)
    first = table.column("vector")[0].as_py()
    return len(first)


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--collection", "name", required=True, help="Collection to upsert into.")
@click.option("--create", is_flag=True, help="Create the collection first if it does not exist.")
@click.option("--dim", type=int, help="Dimension for --create (default: read from the file).")
@click.option("--metric", default="cosine", show_default=True, type=click.Choice(["l2", "ip", "cosine"]))
@click.option("--batch-rows", default=10_000, show_default=True, type=click.IntRange(1, None))
@click.option("--dataset", default="train", show_default=True, help="HDF5 dataset to read (ann-benchmarks layout).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@_target_options
def import_(
    file: Path,
    name: str,
    create: bool,
    dim: int | None,
    metric: str,
    batch_rows: int,
    dataset: str,
    progress: bool,
    target: str,
    tls_ca: str | None,
    api_key: str | None,
) -> None:
    """Stream FILE (.parquet | .arrow | .npy | ann-benchmarks .hdf5) into a collection.

    Rows without an "id" column are numbered from 0; a "vector" column holds the vectors.
    """
    from tqdm.auto import tqdm

    from vecdb.errors import NotFound, VecdbError

    total, batches = _read_batches(file, batch_rows, dataset)
    db = open_target(target, api_key, tls_ca)
    written = 0
    try:
        first = next(batches, None)
        if first is None:
            raise click.ClickException(f"{file} holds no rows")
        try:
            col = db.collection(name)
        except NotFound:
            if not create:
                raise click.ClickException(f"collection {name!r} does not exist (pass --create)") from None
            col = db.create_collection(name, dim or _vector_dim(first), metric=metric)
        bar = tqdm(total=total, unit="vec", desc=f"import {name}", disable=not progress)
        for table in _chain(first, batches):
            written += col.upsert(table)
            bar.update(table.num_rows)
        bar.close()
    except VecdbError as exc:
        _fail(exc)
    finally:
        db.close()
    click.echo(f"imported {written} rows into {name!r}")


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


# ---------------------------------------------------------------- collections


@main.group()
def collections() -> None:
    """List, describe or drop collections."""


@collections.command("list")
@_target_options
def collections_list(target: str, tls_ca: str | None, api_key: str | None) -> None:
    """Print one collection name per line."""
    from vecdb.errors import VecdbError

    db = open_target(target, api_key, tls_ca)
    try:
        for name in db.list_collections():
            click.echo(name)
    except VecdbError as exc:
        _fail(exc)
    finally:
        db.close()


@collections.command("describe")
@click.argument("name")
@_target_options
def collections_describe(name: str, target: str, tls_ca: str | None, api_key: str | None) -> None:
    """Print a collection's configuration and stats as JSON."""
    from vecdb.errors import VecdbError

    db = open_target(target, api_key, tls_ca)
    try:
        col = db.collection(name)
        click.echo(json.dumps({**col.describe(), "stats": col.stats()}, indent=2, default=str))
    except VecdbError as exc:
        _fail(exc)
    finally:
        db.close()


@collections.command("drop")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_target_options
def collections_drop(name: str, yes: bool, target: str, tls_ca: str | None, api_key: str | None) -> None:
    """Delete a collection and all its data."""
    from vecdb.errors import VecdbError

    if not yes:
        click.confirm(f"Drop collection {name!r} and all its data?", abort=True)
    db = open_target(target, api_key, tls_ca)
    try:
        db.drop_collection(name)
    except VecdbError as exc:
        _fail(exc)
    finally:
        db.close()
    click.echo(f"dropped {name!r}")


# ---------------------------------------------------------------- health and info


@main.command()
@click.option("--target", default=DEFAULT_TARGET, envvar="VECDB_TARGET", show_default=True)
@click.option("--tls-ca", type=click.Path(exists=True, dir_okay=False), envvar="VECDB_TLS_CA")
@click.option("--timeout", default=3.0, show_default=True, type=float)
@click.option("--service", default="", help="Service to check ('' = the whole server).")
def health(target: str, tls_ca: str | None, timeout: float, service: str) -> None:
    """Exit 0 if the server reports SERVING, 1 otherwise (for probes and HEALTHCHECK)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from vecdb.rpc.client import parse_target

    scheme, address = parse_target(target)
    if tls_ca or scheme == "grpcs":
        ca = Path(tls_ca).read_bytes() if tls_ca else None
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca))
    else:
        channel = grpc.insecure_channel(address)
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    except grpc.RpcError as err:
        status = f"UNREACHABLE ({err.code().name})"
    finally:
        channel.close()
    click.echo(status)
    sys.exit(0 if status == "SERVING" else 1)


@main.command()
@click.option("--target", default=None, envvar="VECDB_TARGET", help="Also ask this grpc:// server.")
@click.option("--api-key", envvar="VECDB_API_KEY")
@click.option("--tls-ca", type=click.Path(exists=True, dir_okay=False), envvar="VECDB_TLS_CA")
def info(target: str | None, api_key: str | None, tls_ca: str | None) -> None:
    """Print version, kernel backends and SIMD level (and a server's info with --target) as JSON."""
    from vecdb.rpc.server import runtime_info

    report: dict[str, Any] = {"client": runtime_info(None, Limits())}
    report["client"].pop("limits", None)
    report["client"]["python"] = sys.version.split()[0]
    if target:
        from vecdb.errors import VecdbError
        from vecdb.rpc.client import connect_remote

        db = connect_remote(target, api_key=api_key, tls=tls_ca, timeout=10)
        try:
            report["server"] = db.server_info()
        except VecdbError as exc:
            _fail(exc)
        finally:
            db.close()
    click.echo(json.dumps(report, indent=2, default=str))


# ---------------------------------------------------------------- commands owned by other modules


if __name__ == "__main__":
    main()
