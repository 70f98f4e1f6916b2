"""Storage drivers: where the bytes of the layout are kept (filesystem, s3)."""
