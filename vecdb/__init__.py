"""vecdb: a vector database with HNSW, SPANN and compressed indexes, embedded or over gRPC.

>>> import vecdb
>>> db = vecdb.connect(":memory:")
>>> col = db.create_collection("docs", dim=3, metric="l2")
>>> col.upsert([1, 2], [[0, 0, 1], [1, 0, 0]])
2
>>> col.search([0, 0, 0.9], k=1).ids.tolist()
[[1]]
>>> db.close()
"""

from vecdb import errors
from vecdb.api.connect import connect
from vecdb.config import BEBR, HNSW, IVF, PQ, SPANN, SQ, Flat
from vecdb.errors import (
    AlreadyExists,
    DataLoss,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    VecdbError,
)
from vecdb.types import SearchResult
from vecdb.version import __version__

__all__ = [
    "BEBR",
    "HNSW",
    "IVF",
    "PQ",
    "SPANN",
    "SQ",
    "AlreadyExists",
    "DataLoss",
    "FailedPrecondition",
    "Flat",
    "InvalidArgument",
    "NotFound",
    "ResourceExhausted",
    "SearchResult",
    "VecdbError",
    "__version__",
    "connect",
    "errors",
]
