"""The Extole /v6/batches mirror: batch jobs and their data sources."""
