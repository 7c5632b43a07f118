"""The machinery behind the katas: pytest plugin, manifest, command line, test helpers."""
