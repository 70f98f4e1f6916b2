"""regtui: a keyboard-driven terminal explorer for container registries."""

__version__ = "0.1.0"
