"""dmlc: a declarative pipeline language and compiler for distributed machine learning."""

__version__ = "0.1.0"
