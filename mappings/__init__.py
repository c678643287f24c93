"""Mapping files (data): ``mappings/<vendor>/<stream>.yaml``, located with importlib.resources."""
