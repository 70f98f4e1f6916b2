"""HTTP handlers of the registry, one module per resource of the distribution spec."""
