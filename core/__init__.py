"""factoryline core: hook specifications, plugin manager, canonical entities, mapping engine,
HTTP/retry layer, lineage and errors. Connectors and pipelines build on these contracts."""
