"""Interoperability with other libraries (optional dependencies, imported lazily)."""
