"""dmlc: a declarative pipeline language and compiler for distributed machine learning."""

__version__ = "0.1.0"

API = ("Compiled", "DmlError", "Instance", "Run", "RunRecord", "check", "compile", "load", "run", "submit")


def __getattr__(name: str) -> object:
    """`dmlc.check`, `dmlc.compile`, `dmlc.run`, ... from `dmlc.api`, imported on first use (so that
    `import dmlc` stays instant and `dmlc check` loads only what it needs)."""
    if name in API:
        from dmlc import api

        return getattr(api, name)
    raise AttributeError(f"module 'dmlc' has no attribute {name!r}")
