"""factoryline's built-in connectors: one package per vendor, each a pluggy plugin."""
