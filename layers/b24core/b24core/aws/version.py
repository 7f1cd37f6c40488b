"""The bundle's version, named once (the package's ``__version__`` and the HTTP User-Agent use it)."""

VERSION = "0.1.0"
