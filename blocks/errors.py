"""The registry's errors, in a module of their own so that the CLI can catch them without loading
the registry (skops and Prefect take seconds to import)."""

from __future__ import annotations


class RegistryError(Exception):
    """The registry refused an operation or found a damaged entry."""


class AliasConflictError(RegistryError):
    """A compare-and-swap on an alias lost: the alias moved since it was read."""
