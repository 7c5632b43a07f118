# The harness plugin for kata runs; pytester for the project's own tests (pytest_plugins is only
# honoured in the root conftest.py).
pytest_plugins = ["katas._harness.plugin", "pytester"]
