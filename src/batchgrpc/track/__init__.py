"""The Bloomreach mirror: tracking batches and single commands."""
