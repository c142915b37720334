"""Round trips through the wire format (no server involved)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from vecdb.config import BEBR, HNSW, IVF, PQ, SPANN, SQ, Flat
from vecdb.errors import InvalidArgument
from vecdb.rpc import convert
from vecdb.types import SearchResult
from vecdb.v1 import vecdb_pb2 as pb


def test_ids_and_matrices_round_trip() -> None:
    ids = np.array([0, -1, 2**62, 7], dtype=np.int64)
    assert np.array_equal(convert.ids_from_bytes(convert.ids_to_bytes(ids)), ids)
    assert convert.ids_to_bytes([]) == b""
    rng = np.random.default_rng(0)
    m = rng.standard_normal((5, 3)).astype(np.float32)
    assert np.array_equal(convert.matrix_from_bytes(convert.matrix_to_bytes(m), 5, 3), m)
    # little-endian on the wire, whatever the input byte order
    assert convert.matrix_to_bytes(m.astype(">f4")) == m.astype("<f4").tobytes()


@pytest.mark.parametrize(
    "call",
    [
        lambda: convert.ids_from_bytes(b"123"),
        lambda: convert.ids_to_bytes(np.array([1.5])),
        lambda: convert.matrix_from_bytes(b"\0" * 12, 2, 2),
        lambda: convert.matrix_from_bytes(b"", -1, 2),
        lambda: convert.ipc_to_table(b"not arrow"),
        lambda: convert.ipc_to_table(b""),
        lambda: convert.from_json("{bad", "x"),
        lambda: convert.from_json("[1]", "x"),
        lambda: convert.metric_to_proto("hamming"),
        lambda: convert.metric_from_proto(99),
        lambda: convert.upsert_table([1, 2], np.zeros((3, 2))),
        lambda: convert.upsert_table([1], np.zeros((1, 2, 2))),
        lambda: convert.upsert_table(["a"], np.zeros((1, 2))),
        lambda: convert.upsert_table([1], [[1.0, "x"]]),
        lambda: convert.upsert_table([1], np.zeros((1, 2)), {"id": [5]}),
        lambda: convert.upsert_table([1], np.zeros((1, 2)), {"a": [1, 2]}),
    ],
)
def test_malformed_input_is_invalid_argument(call) -> None:
    with pytest.raises(InvalidArgument):
        call()


def test_metric_default_is_cosine() -> None:
    assert convert.metric_from_proto(pb.METRIC_UNSPECIFIED) == "cosine"
    for name in ("l2", "ip", "cosine"):
        assert convert.metric_from_proto(convert.metric_to_proto(name)) == name


def test_upsert_table_and_ipc_round_trip() -> None:
    vectors = np.arange(6, dtype=np.float64).reshape(3, 2)
    table = convert.upsert_table(np.array([3, 1, 2]), vectors, {"year": [2020, 2021, None], "tags": [["a"], [], None]})
    back = convert.ipc_to_table(convert.table_to_ipc(table))
    assert back.equals(table)
    assert back.column_names == ["id", "vector", "year", "tags"]
    assert back.column("vector").type == pa.list_(pa.float32(), 2)
    # a table passes through untouched; a single vector with a single id is one row
    assert convert.upsert_table(table) is table
    assert convert.upsert_table(5, [1.0, 2.0]).num_rows == 1


def test_chunk_table_bounds_message_size() -> None:
    table = convert.upsert_table(np.arange(1000), np.zeros((1000, 64)))
    chunks = list(convert.chunk_table(table, 20_000))
    assert sum(c.num_rows for c in chunks) == 1000
    assert all(len(convert.table_to_ipc(c)) < 25_000 for c in chunks)
    assert pa.concat_tables(chunks).equals(table)


@pytest.mark.parametrize(
    "config",
    [
        Flat(),
        HNSW(),
        HNSW(m=8, ef_construction=40),
        IVF(),
        IVF(nlist=64),
        SPANN(),
        SPANN(memory_budget_mb=1.5),
    ],
)
def test_index_configs_round_trip(config) -> None:
    message = pb.IndexConfig()
    convert.index_to_proto(config, message)
    wire = pb.IndexConfig.FromString(message.SerializeToString())
    assert convert.index_from_proto(wire) == config


@pytest.mark.parametrize("config", [SQ(), SQ(bits=16), PQ(m=8, bits=4, opq=True), BEBR(), BEBR(bits=2, dim_out=64)])
def test_quantization_configs_round_trip(config) -> None:
    message = pb.QuantizationConfig()
    convert.quantization_to_proto(config, message)
    wire = pb.QuantizationConfig.FromString(message.SerializeToString())
    assert convert.quantization_from_proto(wire) == config


def test_unset_and_bad_configs() -> None:
    assert convert.index_from_proto(pb.IndexConfig()) is None
    bad = pb.IndexConfig(hnsw=pb.HnswIndex(m=1))
    with pytest.raises(InvalidArgument, match="m must be"):
        convert.index_from_proto(bad)
    unknown = pb.IndexConfig(extra_json='{"kind": "diskann", "r": 4}')
    with pytest.raises(InvalidArgument, match="unknown index"):
        convert.index_from_proto(unknown)


def test_collection_spec_round_trip() -> None:
    spec = convert.CollectionSpec("docs", 384, "ip", HNSW(m=12), PQ(m=48), {"year": "int32"}, True)
    message = pb.CollectionInfo()
    convert.collection_to_proto(spec, message)
    assert convert.collection_from_proto(pb.CollectionInfo.FromString(message.SerializeToString())) == spec


def test_search_result_round_trip() -> None:
    ids = np.array([[3, 1, -1], [2, -1, -1]], dtype=np.int64)
    distances = np.array([[0.5, 1.0, np.inf], [0.0, np.inf, np.inf]], dtype=np.float32)
    attrs = pa.table({"year": pa.array([1, 2, None, 3, None, None], pa.int32())})
    result = SearchResult(ids, distances, attrs, {"plan": "exact", "scored": np.int64(7), "ok": True})
    back = convert.search_result_from_proto(
        pb.SearchResponse.FromString(convert.search_result_to_proto(result).SerializeToString())
    )
    assert np.array_equal(back.ids, ids) and np.array_equal(back.distances, distances)
    assert back.ids.flags.writeable
    assert back.attributes.equals(attrs)
    assert back.stats == {"plan": "exact", "scored": 7, "ok": True}
    empty = convert.search_result_from_proto(pb.SearchResponse(num_queries=0, k=10))
    assert empty.ids.shape == (0, 10)


def test_upsert_framing_matches_protobuf() -> None:
    table = convert.upsert_table(np.arange(3), np.ones((3, 4)), {"lang": ["en", "fr", "de"]})
    fast = convert.encode_upsert_request(table, "docs", "acme")
    parsed = pb.UpsertRequest.FromString(fast)
    assert (parsed.collection, parsed.tenant) == ("docs", "acme")
    assert convert.ipc_to_table(parsed.arrow_ipc).equals(table)
    # and protobuf's own encoding (plus an unknown field of every wire type) decodes to the same frame
    unknown = bytes([9 << 3 | 0, 1, 10 << 3 | 1]) + b"\0" * 8 + bytes([11 << 3 | 5]) + b"\0" * 4
    slow = pb.UpsertRequest(collection="docs", arrow_ipc=convert.table_to_ipc(table), tenant="acme")
    frame = convert.decode_upsert_request(slow.SerializeToString() + unknown)
    assert (frame.collection, frame.tenant) == ("docs", "acme")
    assert convert.ipc_to_table(frame.arrow_ipc).equals(table)
    assert convert.decode_upsert_request(b"") == convert.UpsertFrame("", memoryview(b""), "")


@pytest.mark.parametrize("data", [b"\x12\x05abc", b"\xff" * 11, b"\x0b", b"\x0a\x01\xff", b"\x00", b"\x09\x00"])
def test_malformed_upsert_bytes(data: bytes) -> None:
    assert isinstance(convert.decode_upsert_request(data), convert.MalformedRequest)
    assert isinstance(convert.safe_deserializer(pb.SearchRequest)(b"\xff" * 11), convert.MalformedRequest)
