from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Metric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_UNSPECIFIED: _ClassVar[Metric]
    METRIC_L2: _ClassVar[Metric]
    METRIC_IP: _ClassVar[Metric]
    METRIC_COSINE: _ClassVar[Metric]
METRIC_UNSPECIFIED: Metric
METRIC_L2: Metric
METRIC_IP: Metric
METRIC_COSINE: Metric

class FlatIndex(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HnswIndex(_message.Message):
    __slots__ = ("m", "ef_construction")
    M_FIELD_NUMBER: _ClassVar[int]
    EF_CONSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    m: int
    ef_construction: int
    def __init__(self, m: _Optional[int] = ..., ef_construction: _Optional[int] = ...) -> None: ...

class IvfIndex(_message.Message):
    __slots__ = ("nlist",)
    NLIST_FIELD_NUMBER: _ClassVar[int]
    nlist: int
    def __init__(self, nlist: _Optional[int] = ...) -> None: ...

class SpannIndex(_message.Message):
    __slots__ = ("target_list_size", "replicas", "closure_eps", "memory_budget_mb")
    TARGET_LIST_SIZE_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    CLOSURE_EPS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BUDGET_MB_FIELD_NUMBER: _ClassVar[int]
    target_list_size: int
    replicas: int
    closure_eps: float
    memory_budget_mb: float
    def __init__(self, target_list_size: _Optional[int] = ..., replicas: _Optional[int] = ..., closure_eps: _Optional[float] = ..., memory_budget_mb: _Optional[float] = ...) -> None: ...

class IndexConfig(_message.Message):
    __slots__ = ("flat", "hnsw", "ivf", "spann", "extra_json")
    FLAT_FIELD_NUMBER: _ClassVar[int]
    HNSW_FIELD_NUMBER: _ClassVar[int]
    IVF_FIELD_NUMBER: _ClassVar[int]
    SPANN_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    flat: FlatIndex
    hnsw: HnswIndex
    ivf: IvfIndex
    spann: SpannIndex
    extra_json: str
    def __init__(self, flat: _Optional[_Union[FlatIndex, _Mapping]] = ..., hnsw: _Optional[_Union[HnswIndex, _Mapping]] = ..., ivf: _Optional[_Union[IvfIndex, _Mapping]] = ..., spann: _Optional[_Union[SpannIndex, _Mapping]] = ..., extra_json: _Optional[str] = ...) -> None: ...

class ScalarQuantization(_message.Message):
    __slots__ = ("bits",)
    BITS_FIELD_NUMBER: _ClassVar[int]
    bits: int
    def __init__(self, bits: _Optional[int] = ...) -> None: ...

class ProductQuantization(_message.Message):
    __slots__ = ("m", "bits", "opq")
    M_FIELD_NUMBER: _ClassVar[int]
    BITS_FIELD_NUMBER: _ClassVar[int]
    OPQ_FIELD_NUMBER: _ClassVar[int]
    m: int
    bits: int
    opq: bool
    def __init__(self, m: _Optional[int] = ..., bits: _Optional[int] = ..., opq: _Optional[bool] = ...) -> None: ...

class BebrQuantization(_message.Message):
    __slots__ = ("bits", "dim_out", "learned", "seed")
    BITS_FIELD_NUMBER: _ClassVar[int]
    DIM_OUT_FIELD_NUMBER: _ClassVar[int]
    LEARNED_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    bits: int
    dim_out: int
    learned: bool
    seed: int
    def __init__(self, bits: _Optional[int] = ..., dim_out: _Optional[int] = ..., learned: _Optional[bool] = ..., seed: _Optional[int] = ...) -> None: ...

class QuantizationConfig(_message.Message):
    __slots__ = ("sq", "pq", "bebr", "extra_json")
    SQ_FIELD_NUMBER: _ClassVar[int]
    PQ_FIELD_NUMBER: _ClassVar[int]
    BEBR_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    sq: ScalarQuantization
    pq: ProductQuantization
    bebr: BebrQuantization
    extra_json: str
    def __init__(self, sq: _Optional[_Union[ScalarQuantization, _Mapping]] = ..., pq: _Optional[_Union[ProductQuantization, _Mapping]] = ..., bebr: _Optional[_Union[BebrQuantization, _Mapping]] = ..., extra_json: _Optional[str] = ...) -> None: ...

class CollectionInfo(_message.Message):
    __slots__ = ("name", "dim", "metric", "index", "quantization", "schema", "multi_tenant")
    class SchemaEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    MULTI_TENANT_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: Metric
    index: IndexConfig
    quantization: QuantizationConfig
    schema: _containers.ScalarMap[str, str]
    multi_tenant: bool
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ..., index: _Optional[_Union[IndexConfig, _Mapping]] = ..., quantization: _Optional[_Union[QuantizationConfig, _Mapping]] = ..., schema: _Optional[_Mapping[str, str]] = ..., multi_tenant: _Optional[bool] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "dim", "metric", "index", "quantization", "schema", "multi_tenant")
    class SchemaEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    MULTI_TENANT_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: Metric
    index: IndexConfig
    quantization: QuantizationConfig
    schema: _containers.ScalarMap[str, str]
    multi_tenant: bool
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ..., index: _Optional[_Union[IndexConfig, _Mapping]] = ..., quantization: _Optional[_Union[QuantizationConfig, _Mapping]] = ..., schema: _Optional[_Mapping[str, str]] = ..., multi_tenant: _Optional[bool] = ...) -> None: ...

class CreateCollectionResponse(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: CollectionInfo
    def __init__(self, collection: _Optional[_Union[CollectionInfo, _Mapping]] = ...) -> None: ...

class GetCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetCollectionResponse(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: CollectionInfo
    def __init__(self, collection: _Optional[_Union[CollectionInfo, _Mapping]] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class DropCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DropCollectionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CollectionStatsRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class CollectionStatsResponse(_message.Message):
    __slots__ = ("stats_json",)
    STATS_JSON_FIELD_NUMBER: _ClassVar[int]
    stats_json: str
    def __init__(self, stats_json: _Optional[str] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("collection", "tenant")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    tenant: str
    def __init__(self, collection: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...

class CountResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class OptimizeRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class OptimizeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("collection", "arrow_ipc", "tenant", "tenants", "version")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    arrow_ipc: bytes
    tenant: str
    tenants: _containers.RepeatedScalarFieldContainer[str]
    version: str
    def __init__(self, collection: _Optional[str] = ..., arrow_ipc: _Optional[bytes] = ..., tenant: _Optional[str] = ..., tenants: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("upserted",)
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    def __init__(self, upserted: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("collection", "ids", "has_ids", "filter", "filter_params_json", "tenant")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    HAS_IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    FILTER_PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: bytes
    has_ids: bool
    filter: str
    filter_params_json: str
    tenant: str
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[bytes] = ..., has_ids: _Optional[bool] = ..., filter: _Optional[str] = ..., filter_params_json: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("collection", "ids", "include", "tenant")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: bytes
    include: _containers.RepeatedScalarFieldContainer[str]
    tenant: str
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[bytes] = ..., include: _Optional[_Iterable[str]] = ..., tenant: _Optional[str] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("arrow_ipc",)
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    arrow_ipc: bytes
    def __init__(self, arrow_ipc: _Optional[bytes] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collection", "queries", "num_queries", "dim", "k", "filter", "filter_params_json", "params_json", "include", "tenant", "version")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    NUM_QUERIES_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    FILTER_PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    queries: bytes
    num_queries: int
    dim: int
    k: int
    filter: str
    filter_params_json: str
    params_json: str
    include: _containers.RepeatedScalarFieldContainer[str]
    tenant: str
    version: str
    def __init__(self, collection: _Optional[str] = ..., queries: _Optional[bytes] = ..., num_queries: _Optional[int] = ..., dim: _Optional[int] = ..., k: _Optional[int] = ..., filter: _Optional[str] = ..., filter_params_json: _Optional[str] = ..., params_json: _Optional[str] = ..., include: _Optional[_Iterable[str]] = ..., tenant: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class AddEmbeddingVersionRequest(_message.Message):
    __slots__ = ("collection", "version", "ids", "vectors", "dim", "normalize")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    version: str
    ids: bytes
    vectors: bytes
    dim: int
    normalize: bool
    def __init__(self, collection: _Optional[str] = ..., version: _Optional[str] = ..., ids: _Optional[bytes] = ..., vectors: _Optional[bytes] = ..., dim: _Optional[int] = ..., normalize: _Optional[bool] = ...) -> None: ...

class AddEmbeddingVersionResponse(_message.Message):
    __slots__ = ("version_json",)
    VERSION_JSON_FIELD_NUMBER: _ClassVar[int]
    version_json: str
    def __init__(self, version_json: _Optional[str] = ...) -> None: ...

class ListEmbeddingVersionsRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class ListEmbeddingVersionsResponse(_message.Message):
    __slots__ = ("versions_json",)
    VERSIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    versions_json: str
    def __init__(self, versions_json: _Optional[str] = ...) -> None: ...

class DropEmbeddingVersionRequest(_message.Message):
    __slots__ = ("collection", "version")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    version: str
    def __init__(self, collection: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class DropEmbeddingVersionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("num_queries", "k", "ids", "distances", "attributes_arrow_ipc", "stats_json")
    NUM_QUERIES_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    DISTANCES_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    STATS_JSON_FIELD_NUMBER: _ClassVar[int]
    num_queries: int
    k: int
    ids: bytes
    distances: bytes
    attributes_arrow_ipc: bytes
    stats_json: str
    def __init__(self, num_queries: _Optional[int] = ..., k: _Optional[int] = ..., ids: _Optional[bytes] = ..., distances: _Optional[bytes] = ..., attributes_arrow_ipc: _Optional[bytes] = ..., stats_json: _Optional[str] = ...) -> None: ...

class ServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerInfoResponse(_message.Message):
    __slots__ = ("version", "info_json")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INFO_JSON_FIELD_NUMBER: _ClassVar[int]
    version: str
    info_json: str
    def __init__(self, version: _Optional[str] = ..., info_json: _Optional[str] = ...) -> None: ...
