"""CLI commands of the local target (stage 5, CLI): `dmlc run`, `dmlc runs`, `dmlc cache`.

Registered under the entry-point group `dmlc.commands`, so the core CLI never imports a target.
Takes the CLI's argparse sub-parsers (`register(subparsers)`); gives the sub-commands, each with
`func(args) -> exit code`. Import-light on purpose: the executor, rich, sqlite and networkx load
only inside the functions, so `dmlc check` and `dmlc compile` stay fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dmlc.params import parse_params


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("run", help="execute a pipeline on this machine")
    p.add_argument("file", nargs="?", metavar="FILE", help="pipeline file (default ./pipeline.dml)")
    p.add_argument("--local", action="store_true", help="run locally (the only executor; accepted for clarity)")
    p.add_argument("--param", action="append", metavar="K=V", help="override a pipeline parameter")
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN",
        help="continue RUN (default: the latest unfinished run) without redoing finished steps",
    )
    p.add_argument("--no-cache", action="store_true", help="ignore memoized results (still stores new ones)")
    p.add_argument("--keep-serving", action="store_true", help="leave serve steps running after the run ends")
    p.add_argument(
        "--secrets",
        metavar="FILE",
        help="values for `secret_env` (YAML/JSON: {name: {key: value}}); else $K from the environment",
    )
    p.set_defaults(func=cmd_run)

    p = subparsers.add_parser("runs", help="runs in the local metadata store")
    runs = p.add_subparsers(dest="runs_command", metavar="list|show|lineage|report")
    q = runs.add_parser("list", help="recent runs")
    q.add_argument("--limit", type=int, default=20)
    q = runs.add_parser("show", help="one run: results, steps, attempts, timings, memory, metrics")
    q.add_argument("run", metavar="RUN", help="run id, a unique prefix of one, or `latest`")
    q = runs.add_parser("lineage", help="where an artifact came from (digest prefix or path)")
    q.add_argument("artifact", metavar="ARTIFACT")
    q = runs.add_parser("report", help="one run as a self-contained HTML page: DAG, timeline, metric plots, logs")
    q.add_argument("run", metavar="RUN", help="run id, a unique prefix of one, or `latest`")
    q.add_argument("-o", "--output", metavar="FILE", help="where to write it (default RUN.html; - for stdout)")
    p.set_defaults(func=cmd_runs, runs_command=None, limit=20)

    p = subparsers.add_parser("cache", help="the local memoization cache")
    cache = p.add_subparsers(dest="cache_command", metavar="explain|prune")
    q = cache.add_parser("explain", help="the memo recipe of a step and why it hits or misses")
    q.add_argument("file", metavar="FILE")
    q.add_argument("step", metavar="STEP")
    q.add_argument("--param", action="append", metavar="K=V")
    q = cache.add_parser("prune", help="delete cached results older than a duration")
    q.add_argument("--older-than", default="7d", metavar="DURATION", help="e.g. 12h, 7d (default 7d)")
    p.set_defaults(func=cmd_cache, cache_command=None)


def cmd_run(args: argparse.Namespace) -> int:
    from dmlc_targets.local.runner import RunRequest, UsageError, execute

    file, resume = args.file, args.resume
    if file is None and isinstance(resume, str) and resume.endswith((".dml", ".yaml", ".yml", ".json")):
        file, resume = resume, True  # `dmlc run --resume p.dml`: argparse took the file for the run id
    req = RunRequest(file, parse_params(args.param), resume, args.no_cache, args.keep_serving, args.secrets)
    try:
        return execute(req)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def cmd_runs(args: argparse.Namespace) -> int:
    from dmlc_targets.local import inspect

    if args.runs_command in (None, "list"):
        return inspect.runs_list(args.limit)
    if args.runs_command == "show":
        return inspect.runs_show(args.run)
    if args.runs_command == "report":
        from dmlc_targets.local.report import write_report
        from dmlc_targets.local.runner import STATE_DIR

        return write_report(args.run, args.output, STATE_DIR / "metadata.db")
    return inspect.runs_lineage(args.artifact)


def cmd_cache(args: argparse.Namespace) -> int:
    from dmlc_targets.local import inspect

    if args.cache_command == "explain":
        return inspect.cache_explain(args.file, args.step, parse_params(args.param))
    if args.cache_command == "prune":
        return inspect.cache_prune(args.older_than)
    print("usage: dmlc cache explain FILE STEP | dmlc cache prune --older-than 7d", file=sys.stderr)
    return 2
