"""Diagnostics (shared by every stage): coded errors as data, a catalogue, and renderers.

Stages return `Diagnostic` values; nothing here prints except the renderers, which the CLI calls.
"""

from dmlc.diagnostics.catalogue import CATALOGUE, explain_page
from dmlc.diagnostics.model import Diagnostic, DmlError, Label, Severity

__all__ = ["CATALOGUE", "Diagnostic", "DmlError", "Label", "Severity", "explain_page"]
