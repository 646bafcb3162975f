"""pytest configuration for the docstring examples under ``src/`` (``--doctest-modules``, see pyproject.toml).

Every Examples section runs. Two adjustments keep that honest without making the default run slow or
brittle:

- an example that trains the demo (it calls ``run_demo(``) is marked ``slow``;
- a module that cannot be imported without an optional package (``OPTIONAL_PACKAGES``) is reported as
  skipped when that package is missing, instead of failing the collection.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

# Source file (relative to this directory) -> the optional package it imports at module level. A module in
# `segdice/integrations/` is named after the package it integrates with and needs no entry here.
OPTIONAL_PACKAGES: dict[str, str] = {
    "segdice/cli.py": "typer",
}

SLOW_EXAMPLE_CALLS = ("run_demo(",)

HERE = Path(__file__).resolve().parent

# This file is a plugin, not a module with examples; collected as one it would be imported a second time
# under the name `conftest`, which tests/conftest.py already holds.
collect_ignore = ["conftest.py"]


def _optional_package(path: Path) -> str | None:
    rel = path.resolve().relative_to(HERE).as_posix()
    if rel in OPTIONAL_PACKAGES:
        return OPTIONAL_PACKAGES[rel]
    parts = rel.split("/")
    if parts[:2] == ["segdice", "integrations"] and len(parts) == 3 and parts[2] != "__init__.py":
        return parts[2].removesuffix(".py")
    return None


class _MissingOptionalPackage(pytest.File):
    """Stands in for a module's doctests when the optional package the module imports is not installed."""

    package = ""

    def collect(self):
        pytest.skip(f"{self.path.name}: the optional package {self.package!r} is not installed")


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent):
    collectors = yield
    package = _optional_package(file_path) if file_path.suffix == ".py" else None
    if package is None or importlib.util.find_spec(package) is not None:
        return collectors
    stand_in = _MissingOptionalPackage.from_parent(parent, path=file_path)
    stand_in.package = package
    return [stand_in]


def pytest_collection_modifyitems(items):
    for item in items:
        examples = getattr(getattr(item, "dtest", None), "examples", ())
        if any(call in example.source for example in examples for call in SLOW_EXAMPLE_CALLS):
            item.add_marker(pytest.mark.slow)
