"""`python -m dmlc.runtime KIND --spec SPEC.json`: run one pipeline step (DESIGN §4).

Exit codes: 0 ok; 1 bad spec or user error (one line on stderr, no traceback); 75 a transient
failure worth retrying; 2 any other failure (with its traceback). TensorFlow is imported only by the
step modules that need it, so `select` and `task` start fast. A spec with `staging` downloads its
inputs from the object store first and uploads its outputs after (`staging.py`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from dmlc.runtime import KINDS
from dmlc.runtime.step_io import EXIT_FAILED, EXIT_OK, EXIT_TRANSIENT, EXIT_USER, TransientError, UserError, load_spec

MODULES = {kind: f"dmlc.runtime.{'select_step' if kind == 'select' else kind}" for kind in KINDS}
MODULES["finally"] = "dmlc.runtime.task"  # the exit handler is a task that runs last


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dmlc.runtime", description="run one dmlc pipeline step")
    parser.add_argument("kind", choices=list(MODULES))
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--spec", help="path of the SPEC.json")
    source.add_argument("--spec-json", help="the SPEC as JSON text (Kubernetes targets)")
    parser.add_argument("--outputs", help="outputs folder (env DMLC_OUTPUTS wins, then this, then the spec)")
    parser.add_argument("--refs", help="JSON: where the engine put the values the spec's references read")
    parser.add_argument("--role", help=argparse.SUPPRESS)  # set by the local launcher; TF_CONFIG says the same
    parser.add_argument("--task-index", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--foreground", action="store_true", help="serve: run the server in this process")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        spec = load_spec(args.spec, args.spec_json, args.kind, args.outputs, args.refs)
        if args.foreground:
            spec = spec.model_copy(update={"foreground": True})
        os.environ.update(spec.attrs.env)  # resolved: where an engine could not (a TFJob's manifest)
        module = importlib.import_module(MODULES[args.kind])
        staged = spec.staging is not None and spec.role != "router"  # a router serves no model
        if staged:
            from dmlc.runtime import staging

            staging.download(spec)
        module.run(spec)
        if staged:
            staging.upload(spec)
    except UserError as exc:
        print(f"error: {args.kind}: {exc}", file=sys.stderr)
        return EXIT_USER
    except TransientError as exc:
        print(f"error (transient): {args.kind}: {exc}", file=sys.stderr)
        return EXIT_TRANSIENT
    except KeyboardInterrupt:
        return 130
    except Exception:
        traceback.print_exc()
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
