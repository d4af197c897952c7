"""Typed logic of each CT stage; each module ends with its thin Prefect task wrappers."""
