"""batchgrpc: a gRPC microservice for batch event ingestion."""

__version__ = "0.1.0"
