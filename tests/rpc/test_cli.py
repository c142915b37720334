"""The `vecdb` CLI: serve settings precedence, import, collections, health, info."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import vecdb.rpc.server as server_module
from vecdb.cli import main
from vecdb.rpc.client import connect_remote


@pytest.fixture
def captured(monkeypatch) -> list:
    """Replace server.run so `vecdb serve` only resolves its settings."""
    seen: list = []
    monkeypatch.setattr(server_module, "run", seen.append)
    for name in ("VECDB_PORT", "VECDB_HOST", "VECDB_DATA_DIR", "VECDB_MAX_K", "VECDB_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return seen


def test_serve_defaults(captured) -> None:
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 0, result.output
    settings = captured[0]
    assert (settings.data_dir, settings.host, settings.port) == ("./vecdb-data", "127.0.0.1", 50051)
    assert settings.api_keys is None and settings.reflection is False
    assert settings.limits.max_k == 10_000


def test_serve_precedence_flags_over_env_over_toml(captured, tmp_path) -> None:
    config = tmp_path / "vecdb.toml"
    config.write_text('[server]\nport = 6000\nhost = "127.0.0.2"\ndata-dir = "/toml"\nmax_k = 7\n')
    runner = CliRunner()
    result = runner.invoke(main, ["serve", "--config", str(config)])
    assert result.exit_code == 0, result.output
    s = captured[-1]
    assert (s.port, s.host, s.data_dir, s.limits.max_k) == (6000, "127.0.0.2", "/toml", 7)
    result = runner.invoke(main, ["serve", "--config", str(config)], env={"VECDB_PORT": "7000"})
    assert (captured[-1].port, captured[-1].host) == (7000, "127.0.0.2")
    result = runner.invoke(main, ["serve", "--config", str(config), "--port", "8000"], env={"VECDB_PORT": "7000"})
    assert captured[-1].port == 8000
    # a config file given through the environment works too
    result = runner.invoke(main, ["serve"], env={"VECDB_CONFIG": str(config)})
    assert captured[-1].port == 6000
    bad = tmp_path / "bad.toml"
    bad.write_text("prot = 1\n")
    result = runner.invoke(main, ["serve", "--config", str(bad)])
    assert result.exit_code != 0 and "unknown setting" in result.output


def test_serve_rejects_bad_limits(captured) -> None:
    result = CliRunner().invoke(main, ["serve", "--max-k", "0"])
    assert result.exit_code != 0 and "max_k" in result.output


def _write_inputs(tmp_path, n: int, d: int) -> dict[str, object]:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, d)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    flat = pa.array(x.reshape(-1))
    table = pa.table({"id": np.arange(100, 100 + n), "vector": pa.FixedSizeListArray.from_arrays(flat, d)})
    pq.write_table(table, tmp_path / "x.parquet", row_group_size=37)
    with pa.OSFile(str(tmp_path / "x.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=50)
    with pa.OSFile(str(tmp_path / "x.arrows"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=50)
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "x.hdf5", "w") as f:
        f["train"] = x
        f["test"] = x[:3]
    return {"x": x}


def test_import_each_format_over_grpc_and_manage_collections(grpc_server, tmp_path) -> None:
    n, d = 120, 6
    data = _write_inputs(tmp_path, n, d)
    runner = CliRunner()
    target = ["--target", grpc_server]
    for fmt in ("npy", "parquet", "arrow", "arrows", "hdf5"):
        args = [
            "import",
            str(tmp_path / f"x.{fmt}"),
            "--collection",
            f"imp_{fmt}",
            "--create",
            "--metric",
            "l2",
            "--batch-rows",
            "50",
            "--no-progress",
            *target,
        ]
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
        assert f"imported {n} rows" in result.output
    db = connect_remote(grpc_server)
    res = db.collection("imp_hdf5").search(data["x"][:2], k=1)
    assert res.ids[:, 0].tolist() == [0, 1]
    assert db.collection("imp_parquet").get([100], include=()).num_rows == 1  # ids from the file
    db.close()
    listed = runner.invoke(main, ["collections", "list", *target])
    assert {"imp_npy", "imp_parquet", "imp_arrow", "imp_arrows", "imp_hdf5"} <= set(listed.output.split())
    described = runner.invoke(main, ["collections", "describe", "imp_npy", *target])
    info = json.loads(described.output)
    assert (info["dim"], info["metric"], info["stats"]["rows"]) == (6, "l2", n)
    missing = runner.invoke(main, ["import", str(tmp_path / "x.npy"), "--collection", "nope", *target])
    assert missing.exit_code != 0 and "--create" in missing.output
    for fmt in ("npy", "parquet", "arrow", "arrows", "hdf5"):
        assert runner.invoke(main, ["collections", "drop", f"imp_{fmt}", "--yes", *target]).exit_code == 0
    gone = runner.invoke(main, ["collections", "describe", "imp_npy", *target])
    assert gone.exit_code != 0 and "NotFound" in gone.output


def test_import_into_a_directory(tmp_path) -> None:
    _write_inputs(tmp_path, 30, 4)
    args = [
        "import",
        str(tmp_path / "x.npy"),
        "--collection",
        "local",
        "--create",
        "--no-progress",
        "--target",
        str(tmp_path / "data"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    listed = CliRunner().invoke(main, ["collections", "list", "--target", str(tmp_path / "data")])
    assert listed.output.split() == ["local"]


def test_health_and_info(grpc_server) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["health", "--target", grpc_server])
    assert ok.exit_code == 0 and ok.output.strip() == "SERVING"
    down = runner.invoke(main, ["health", "--target", "grpc://127.0.0.1:1", "--timeout", "0.5"])
    assert down.exit_code == 1 and "UNREACHABLE" in down.output
    info = json.loads(runner.invoke(main, ["info", "--target", grpc_server]).output)
    assert info["client"]["version"] == info["server"]["version"]
    assert "simd_level" in info["client"]["kernels"]
    assert "wal_records_replayed" in info["server"]["database"]


def test_serve_fails_cleanly_on_a_bad_key_file(tmp_path) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text('[[keys]]\nkey = "short"\nscope = "admin"\n')
    args = ["serve", "--data-dir", str(tmp_path / "d"), "--port", "0", "--api-keys", str(keys)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "InvalidArgument" in result.output and "16 characters" in result.output


def test_external_commands_load_lazily_and_fail_alone(monkeypatch) -> None:
    import vecdb.cli as cli

    monkeypatch.setitem(cli.EXTERNAL_COMMANDS, "ghost", ("vecdb.no_such_module", ("ghost",)))
    monkeypatch.setattr(cli, "_module_exists", lambda name: True)
    runner = CliRunner()
    assert "ghost" in runner.invoke(main, ["--help"]).output
    result = runner.invoke(main, ["ghost", "--anything"])
    assert result.exit_code != 0 and "ghost is unavailable" in result.output
    assert runner.invoke(main, ["health", "--help"]).exit_code == 0
    monkeypatch.setattr(cli, "_module_exists", lambda name: name == "vecdb.bench.cli")
    assert "ghost" not in runner.invoke(main, ["--help"]).output


def test_the_client_never_imports_the_engine() -> None:
    import subprocess
    import sys

    code = "import sys, vecdb, vecdb.rpc.client; print(sorted(m for m in sys.modules if m.startswith('vecdb.engine')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
