pytest_plugins = ["katas._harness.plugin"]
