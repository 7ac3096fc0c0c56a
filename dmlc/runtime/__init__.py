"""The dmlc ML runtime: `python -m dmlc.runtime KIND --spec SPEC.json` runs one pipeline step.

Kinds: ingest, train, evaluate, select, serve, task (see DESIGN §4 and README.md here). Importing this
package is cheap: TensorFlow is imported lazily, only inside the step functions that need it.
"""

KINDS = ("ingest", "train", "evaluate", "select", "serve", "task")
