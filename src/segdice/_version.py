"""The package version, read from the installed metadata so it has one source: pyproject.toml."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("segdice")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
