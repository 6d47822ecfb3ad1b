"""The catalog: one backend served two ways, REST (JSON over HTTP/1.1) and gRPC (protobuf over HTTP/2)."""
