"""The bundled registry: an OCI Distribution registry on CNCF Distribution's storage layout."""

__version__ = "0.1.0"
