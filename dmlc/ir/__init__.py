"""dmlc stage package."""
