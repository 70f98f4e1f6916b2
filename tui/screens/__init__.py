"""One screen per module: registry, repository, image, layer files, storage."""
