"""Built-in plugin: composite sources built from other sources -- `ensemble` and `steps`."""
