"""Inbound webhooks: verified HTTP callbacks become Prefect events."""
