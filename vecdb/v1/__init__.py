"""Generated protobuf and gRPC code for vecdb.v1 (scripts/gen_proto.sh; never edit by hand)."""
