"""Data sources of the explorer that are not plain registry calls (storage, GC), no Textual."""
