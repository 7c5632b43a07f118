import os

import pytest

# pytester for the project's own tests. Named here, not in the root conftest.py, which learners'
# handouts share: this conftest is one pytest loads at start-up (tests/ is where it looks).
pytest_plugins = ["pytester"]

# The project's tests read the harness's English messages; tests of the Chinese ones ask for them.
os.environ["KATAS_LANG"] = "en"

# Per-test limit for the project's own tests. Not set in pyproject.toml: there it would
# also print pytest-timeout's header lines in every learner's kata run.
PROJECT_TEST_TIMEOUT = 300


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    from tests.load import scaled

    limit = scaled(PROJECT_TEST_TIMEOUT)  # longer on a loaded machine (tests/load.py)
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(limit))
