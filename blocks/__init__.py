"""Custom Prefect blocks: the model registry."""
