"""Tenant isolation over gRPC against the real engine: a tenant-confined key sees only its tenant.

Each read path (search, filtered search, get, count, filter-delete) is tried by every tenant's key
against data of three tenants with shared rows; the number of rows leaked must be 0.
"""

from __future__ import annotations

import numpy as np
import pytest

import vecdb
from tests.support.server import ServerProcess

KEYS = """
[[keys]]
key = "admin-key-0123456789abcdef"
scope = "admin"
[[keys]]
key = "acme-key-0123456789abcdef"
scope = "read-write"
tenant = "acme"
[[keys]]
key = "globex-key-0123456789abcdef"
scope = "read-write"
tenant = "globex"
[[keys]]
key = "initech-key-0123456789abcdef"
scope = "read-only"
tenant = "initech"
"""
DIM = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("tenants")
    (root / "keys.toml").write_text(KEYS)
    proc = ServerProcess(root / "data", "--api-keys", str(root / "keys.toml"))
    proc.start()
    yield proc
    proc.stop()


def test_no_read_path_leaks_across_tenants(server):
    rng = np.random.default_rng(0)
    with vecdb.connect(server.uri, api_key="admin-key-0123456789abcdef") as admin:
        admin.create_collection("docs", dim=DIM, metric="l2", multi_tenant=True, schema={"n": "int64"})
    owners: dict[int, set[str]] = {}
    for tenant, ids in (("acme", range(0, 40)), ("globex", range(40, 80))):
        with vecdb.connect(server.uri, api_key=f"{tenant}-key-0123456789abcdef") as db:
            ids = np.array(list(ids))
            db.collection("docs").upsert(ids, rng.standard_normal((len(ids), DIM)), {"n": ids})
            owners.update({int(i): {tenant} for i in ids})
    with vecdb.connect(server.uri, api_key="admin-key-0123456789abcdef") as admin:  # rows shared by acme and initech
        admin.collection("docs").upsert([100, 101], rng.standard_normal((2, DIM)), {"n": [100, 101]},
                                        tenants=["acme", "initech"])
        owners.update({100: {"acme", "initech"}, 101: {"acme", "initech"}})

    leaks = 0
    for tenant in ("acme", "globex", "initech"):
        mine = {i for i, who in owners.items() if tenant in who}
        with vecdb.connect(server.uri, api_key=f"{tenant}-key-0123456789abcdef") as db:
            col = db.collection("docs")
            res = col.search(rng.standard_normal((5, DIM)), k=200)
            leaks += len(set(res.ids[res.ids >= 0].tolist()) - mine)
            res = col.search(rng.standard_normal((5, DIM)), k=200, filter="n >= 0")
            leaks += len(set(res.ids[res.ids >= 0].tolist()) - mine)
            leaks += len(set(col.get(list(owners), include=()).column("id").to_pylist()) - mine)
            assert col.count() == len(mine)
    assert leaks == 0

    with vecdb.connect(server.uri, api_key="acme-key-0123456789abcdef") as db, pytest.raises(vecdb.AlreadyExists):
        db.collection("docs").upsert([45], np.zeros((1, DIM)), {"n": [1]})  # another tenant's row
    with vecdb.connect(server.uri, api_key="globex-key-0123456789abcdef") as db:
        col = db.collection("docs")
        # A filter-delete by globex removes only globex rows, even with a filter that matches all.
        assert col.delete(filter="n >= 0") == 40
        assert col.delete(ids=[0, 1, 100]) == 0  # acme's and shared rows are not globex's to delete
    with vecdb.connect(server.uri, api_key="acme-key-0123456789abcdef") as db:
        assert db.collection("docs").count() == 42
    with vecdb.connect(server.uri, api_key="initech-key-0123456789abcdef") as db:
        col = db.collection("docs")
        with pytest.raises(vecdb.errors.PermissionDenied):  # a read-only key
            col.upsert([500], np.zeros((1, DIM)), {"n": [1]})
    with vecdb.connect(server.uri, api_key="acme-key-0123456789abcdef") as db:
        col = db.collection("docs")
        with pytest.raises(vecdb.errors.PermissionDenied):  # a confined key cannot share rows
            col.upsert([501], np.zeros((1, DIM)), {"n": [1]}, tenants=["acme", "globex"])
