"""Reusable widgets of the explorer; they render models, never call the registry."""
