"""Tenant isolation: no read path reaches another tenant's rows (a hypothesis state machine)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import vecdb
from vecdb.engine import indexing, tenant_search
from vecdb.engine.database import Database
from vecdb.engine.store import StoreOptions

TENANTS = ["acme", "globex", "initech"]
DIM = 4


def vec(row_id: int, version: int) -> np.ndarray:
    return np.random.default_rng(row_id * 7919 + version).standard_normal((1, DIM)).astype(np.float32)


class TenantModel(RuleBasedStateMachine):
    """The model: id -> (tenant set, version). vecdb must agree on every read, for every tenant."""

    def __init__(self) -> None:
        super().__init__()
        self.db = vecdb.connect(":memory:")
        self.col = self.db.create_collection("t", dim=DIM, metric="l2", multi_tenant=True, schema={"v": "int64"})
        self.rows: dict[int, tuple[frozenset[str], int]] = {}
        self.version = 0

    def teardown(self) -> None:
        self.db.close()

    @rule(row_id=st.integers(0, 30), tenant=st.sampled_from(TENANTS))
    def upsert_own(self, row_id: int, tenant: str) -> None:
        self.version += 1
        owners = self.rows.get(row_id, (frozenset([tenant]), 0))[0]
        if tenant not in owners:
            with pytest.raises(vecdb.AlreadyExists):
                self.col.upsert([row_id], vec(row_id, self.version), {"v": [self.version]}, tenant=tenant)
            return
        self.col.upsert([row_id], vec(row_id, self.version), {"v": [self.version]}, tenant=tenant)
        self.rows[row_id] = (frozenset([tenant]), self.version)

    @rule(row_id=st.integers(0, 30), shared=st.sets(st.sampled_from(TENANTS), min_size=2))
    def upsert_shared(self, row_id: int, shared: set[str]) -> None:
        self.version += 1
        self.col.upsert([row_id], vec(row_id, self.version), {"v": [self.version]}, tenants=sorted(shared))
        self.rows[row_id] = (frozenset(shared), self.version)

    @rule(ids=st.lists(st.integers(0, 30), max_size=5), tenant=st.sampled_from(TENANTS))
    def delete_as_tenant(self, ids: list[int], tenant: str) -> None:
        visible = {i for i in set(ids) if i in self.rows and tenant in self.rows[i][0]}
        assert self.col.delete(ids, tenant=tenant) == len(visible)
        for i in visible:
            del self.rows[i]

    @rule(tenant=st.sampled_from(TENANTS), max_v=st.integers(0, 50))
    def delete_by_filter_as_tenant(self, tenant: str, max_v: int) -> None:
        doomed = {i for i, (owners, v) in self.rows.items() if tenant in owners and v < max_v}
        assert self.col.delete(filter="v < :m", filter_params={"m": max_v}, tenant=tenant) == len(doomed)
        for i in doomed:
            del self.rows[i]

    @rule()
    def optimize(self) -> None:
        self.col.optimize()

    @invariant()
    def every_read_path_is_isolated(self) -> None:
        for tenant in TENANTS:
            mine = {i for i, (owners, _) in self.rows.items() if tenant in owners}
            assert self.col.count(tenant=tenant) == len(mine)
            got = set(self.col.get(list(range(31)), include=(), tenant=tenant).column("id").to_pylist())
            assert got == mine
            res = self.col.search(np.zeros(DIM), k=40, tenant=tenant)
            assert set(res.ids[res.ids >= 0].tolist()) == mine
            res = self.col.search(np.zeros(DIM), k=40, tenant=tenant, filter="v >= 0")
            assert set(res.ids[res.ids >= 0].tolist()) == mine
        assert self.col.count() == len(self.rows)


TenantModel.TestCase.settings = settings(max_examples=12, stateful_step_count=12, deadline=None)
test_tenant_isolation = TenantModel.TestCase


class IndexedTenantModel(TenantModel):
    """The same model on an HNSW collection whose every segment gets a tenant index, small enough
    that every tenant is searched through it (tree descent, not the exact scan): deletes and
    replacing upserts must be masked there too."""

    def __init__(self) -> None:
        RuleBasedStateMachine.__init__(self)
        self._saved = dict(indexing.TENANT_INDEX_CONFIG), tenant_search.MAX_FRACTION
        indexing.TENANT_INDEX_CONFIG.update({"branching": 2, "leaf_size": 2, "exact_threshold": 0})
        tenant_search.MAX_FRACTION = 1.0
        self.db = Database.open(":memory:", options=StoreOptions(index_min_rows=1, seal_bytes=512, background=False))
        self.col = self.db.create_collection("t", dim=DIM, metric="l2", multi_tenant=True, schema={"v": "int64"},
                                             index=vecdb.HNSW(m=4, ef_construction=8))
        self.rows = {}
        self.version = 0

    def teardown(self) -> None:
        self.db.close()
        indexing.TENANT_INDEX_CONFIG.clear()
        indexing.TENANT_INDEX_CONFIG.update(self._saved[0])
        tenant_search.MAX_FRACTION = self._saved[1]

    @invariant()
    def sealed_rows_use_the_tenant_index(self) -> None:
        for tenant in TENANTS:
            plans = self.col.search(np.zeros(DIM), k=40, tenant=tenant).stats["plans"]
            assert all(p.startswith("tenant-") or p == "memtable-exact" for p in plans), plans


IndexedTenantModel.TestCase.settings = settings(max_examples=12, stateful_step_count=12, deadline=None)
test_tenant_isolation_through_the_tenant_index = IndexedTenantModel.TestCase


def test_tenant_arguments_are_checked():
    with vecdb.connect(":memory:") as db:
        plain = db.create_collection("plain", dim=DIM)
        with pytest.raises(vecdb.InvalidArgument):
            plain.upsert([1], np.zeros((1, DIM)), tenant="acme")
        with pytest.raises(vecdb.InvalidArgument):
            plain.search(np.zeros(DIM), k=1, tenant="acme")
        mt = db.create_collection("mt", dim=DIM, multi_tenant=True)
        with pytest.raises(vecdb.InvalidArgument):
            mt.upsert([1], np.zeros((1, DIM)))  # which tenant?
        with pytest.raises(vecdb.InvalidArgument):
            mt.upsert([1], np.zeros((1, DIM)), tenant="../etc")
        mt.upsert([1], np.zeros((1, DIM)), tenants=["b", "a"])
        assert mt.tenants() == ["a", "b"]
        assert mt.get([1], include=("tenants",), tenant="a").column("tenants").to_pylist() == [["a", "b"]]
