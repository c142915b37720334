"""vecdb: a vector database with HNSW, SPANN and compressed indexes, embedded or over gRPC."""
