"""The `dmlc` command line: argument parsing and exit codes around the driver (DESIGN §1).

Exit codes: 0 ok, 1 user error (diagnostics printed), 2 usage error, 3 a step failed at run time.
A user error never shows a traceback; an internal error prints DML900 (traceback under --debug).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dmlc import targets
from dmlc.diagnostics.catalogue import DML900
from dmlc.diagnostics.model import Diagnostic, DmlError

EXIT_OK, EXIT_USER, EXIT_USAGE = 0, 1, 2


_SHOWN: dict[str, Any] = {}  # sources that are not files (`dmlc check -`), by the name they were checked as


def _sources(diags: Sequence[Diagnostic]) -> dict[str, Any]:
    from dmlc.source import Source

    out = dict(_SHOWN)
    for d in diags:
        for label in (d.primary, *d.secondary):
            if label.span and label.span.file not in out and Path(label.span.file).is_file():
                # Shown text only: undecodable bytes (the DML004 case) display as U+FFFD.
                text = Path(label.span.file).read_bytes().decode("utf-8", errors="replace")
                out[label.span.file] = Source(label.span.file, text)
    return out


def report(diags: Sequence[Diagnostic], fmt: str = "human") -> None:
    """Diagnostics for people (and `short` lines) go to stderr; JSON is the command's output (stdout)."""
    from dmlc.diagnostics.render import render

    (sys.stdout if fmt == "json" else sys.stderr).write(render(list(diags), _sources(diags), fmt))


def cmd_check(args: argparse.Namespace) -> int:
    from dmlc import api

    if args.files.count("-") > 1 or not _printable_name(args.stdin_filename):
        print(
            "usage: dmlc check reads stdin once (`-`), named by a --stdin-filename of printable text", file=sys.stderr
        )
        return EXIT_USAGE

    diags = [d for path in args.files for d in (_check_stdin(args.stdin_filename) if path == "-" else api.check(path))]
    if diags:
        report(diags, args.format)
        return EXIT_USER
    if args.format != "json":
        noun = "file" if len(args.files) == 1 else "files"
        print(f"ok: {len(args.files)} {noun} checked, no errors")
    else:
        print("[]")
    return EXIT_OK


def _check_stdin(name: str) -> list[Diagnostic]:
    """`dmlc check -`: the text on stdin, checked as the file `name` (its suffix picks .dml or YAML)."""
    from dmlc import api
    from dmlc.parse import MAX_BYTES
    from dmlc.source import Source

    if sys.stdin is None:  # started with stdin closed (`<&-`)
        from dmlc.diagnostics.catalogue import DML200
        from dmlc.diagnostics.model import Label

        return [
            Diagnostic(
                DML200, "cannot read stdin: it is closed", Label(None), help="pipe the file in: `dmlc check - < FILE`"
            )
        ]
    raw = sys.stdin.buffer.read(MAX_BYTES + 1)  # bounded, as a file is (DML200 past it)
    _SHOWN[name] = Source(name, raw[:MAX_BYTES].decode("utf-8", errors="replace"))  # shown text only
    return api.check(name, text=raw)


def _printable_name(name: str) -> bool:
    """A name that cannot break a `file:line:col:` line (no control characters, not empty)."""
    return bool(name) and name.isprintable()


def cmd_compile(args: argparse.Namespace) -> int:
    from dmlc import api
    from dmlc.params import parse_params

    compiled = api.compile(args.file, args.target, parse_params(args.param), with_setup=args.with_setup)
    if compiled.warnings:
        report(compiled.warnings)
    _write(compiled.text, args.output)
    return EXIT_OK


def _write(data: str | bytes, output: str | None) -> None:
    """Text or bytes to stdout (no `-o`, or `-o -`) or to the file OUT (DML201/DML203 when it cannot be)."""
    if output in (None, "-"):
        if isinstance(data, bytes):
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data)
        return
    from dmlc.atomic import write_output

    write_output(output, data)


def cmd_graph(args: argparse.Namespace) -> int:
    from dmlc.driver import load
    from dmlc.graphviz import render_graph

    loaded = load(args.file)
    _write(render_graph(loaded.pipeline, args.format), args.output)
    return EXIT_OK


def cmd_fmt(args: argparse.Namespace) -> int:
    from dmlc.fmt import format_file

    if args.output and len(args.file) > 1:
        print("dmlc fmt: error: -o takes one FILE", file=sys.stderr)
        return EXIT_USAGE
    status = EXIT_OK
    for path in args.file:  # every file is tried: one that does not check is reported, the others formatted
        try:
            status = max(status, format_file(path, to=args.to, check=args.check, output=args.output, diff=args.diff))
        except DmlError as exc:
            report(exc.diagnostics)
            status = EXIT_USER
    return status


def cmd_build(args: argparse.Namespace) -> int:
    """`dmlc build FILE`: the build context of the runtime image plus the pipeline's user code (dmlc.build)."""
    from dmlc.build import build_command
    from dmlc.driver import load

    pipeline = load(args.file).pipeline
    return build_command(pipeline, args.file, args.requirements, args.repo, args.output, args.no_build)


def cmd_schema(args: argparse.Namespace) -> int:
    from dmlc import schema, schema_install

    if args.install is not None:  # editors without the dmlc extension: the schema by file name, offline
        for path in schema_install.install(args.install):
            print(f"wrote {path}")
        print(f"YAML files named {' or '.join(schema.FILE_PATTERNS)} in {args.install} now use the dmlc schema")
        return EXIT_OK
    _write(schema.schema_text(), args.output)
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from dmlc.diagnostics.catalogue import CATALOGUE, explain_page, ranges_text

    page = explain_page(args.code)
    if page is None:
        from dmlc.diagnostics.model import suggest

        near = suggest(args.code.upper(), list(CATALOGUE))
        hint = f" (did you mean {near}?)" if near else ""
        print(f"error: unknown code `{args.code}`{hint}; codes: {ranges_text()}", file=sys.stderr)
        return EXIT_USAGE
    print(page, end="" if page.endswith("\n") else "\n")
    return EXIT_OK


def cmd_targets(args: argparse.Namespace) -> int:
    from dmlc import targets

    for name in targets.names():
        target = targets.get(name)
        if target is None:
            continue
        print(f"{name}  ({target.suffix})  {target.description}")
        width = max((len(c) for c in target.capabilities), default=0)
        for construct, how in sorted(target.capabilities.items()):
            print(f"    {construct:<{width}}  {how or 'not supported (DML100)'}")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """Argument problems are diagnostics (exit 1) found before TensorFlow loads: a port out of range or
    replicas below 1 (DML022), an invalid name (DML019), a taken port (DML204), a model folder that is
    missing or not a SavedModel (DML200)."""
    try:
        from dmlc.runtime.serve import ServeError, run_server
        from dmlc.runtime.step_io import UserError
    except ImportError as exc:
        print(f"error: serving needs the ml extra (pip install 'dmlc[ml]'): {exc}", file=sys.stderr)
        return EXIT_USER
    try:
        run_server(args.model_dir, name=args.name, port=args.port, replicas=args.replicas)
    except ServeError as exc:
        from dmlc.diagnostics.model import Label

        raise DmlError([Diagnostic(exc.code, exc.message, Label(None), help=exc.help)]) from None
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER
    return EXIT_OK


def cmd_lsp(args: argparse.Namespace) -> int:
    from dmlc.lsp.server import serve

    serve()
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmlc", description="declarative pipelines for distributed ML")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    parser.add_argument("--version", action="version", version=f"dmlc {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_core(sub)
    for register in targets.command_registrars():  # commands targets add, e.g. `dmlc run` (local)
        register(sub)
    return parser


def _version() -> str:
    from dmlc import __version__

    return __version__


def _add_core(sub: Any) -> None:
    p = sub.add_parser("check", help="parse and validate; diagnostics only")
    p.add_argument("files", nargs="+", metavar="FILE", help="pipeline files; `-` reads stdin")
    p.add_argument("--format", choices=["human", "short", "json"], default="human")
    p.add_argument("--stdin-filename", default="<stdin>.dml", metavar="NAME", help="the name stdin is checked as")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("compile", help="compile for a target")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--target", "-t", required=True)
    p.add_argument("-o", "--output", metavar="OUT")
    p.add_argument("--with-setup", action="store_true", help="also emit the cluster-side setup manifests")
    p.add_argument("--param", action="append", metavar="K=V")
    p.set_defaults(func=cmd_compile)
    p = sub.add_parser("graph", help="picture of the DAG")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--format", choices=["mermaid", "dot", "svg", "png"], default="mermaid")
    p.add_argument("-o", "--output", metavar="OUT")
    p.set_defaults(func=cmd_graph)
    p = sub.add_parser("fmt", help="canonical formatting; lossless dml <-> yaml")
    p.add_argument("file", metavar="FILE", nargs="+")
    p.add_argument("--to", choices=["dml", "yaml"])
    how = p.add_mutually_exclusive_group()
    how.add_argument("--check", action="store_true", help="exit 1 if a file is not formatted (nothing is written)")
    how.add_argument("--diff", action="store_true", help="print the changes as a diff, exit 1 if any (nothing written)")
    p.add_argument("-o", "--output", metavar="OUT", help="write here instead of in place (`-` for stdout)")
    p.set_defaults(func=cmd_fmt)
    p = sub.add_parser("build", help="image build context: the runtime image plus the pipeline's user code")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--requirements", metavar="FILE", help="pip requirements installed into the image")
    p.add_argument("--repo", metavar="REPO", help="image repository (default localhost/dmlc-PIPELINE)")
    p.add_argument("-o", "--output", metavar="DIR", help="context folder (default .dmlc/build/PIPELINE)")
    p.add_argument("--no-build", action="store_true", help="write the context and record it; print the command")
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("schema", help="JSON Schema of the YAML form")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="OUT")
    where.add_argument(
        "--install",
        nargs="?",
        const=".",
        metavar="DIR",
        help="write it to DIR/.vscode and associate it with *.dml.yaml / *.dml.yml (yaml.schemas in "
        "DIR/.vscode/settings.json, read by the YAML language server); DIR defaults to .",
    )
    p.set_defaults(func=cmd_schema)
    p = sub.add_parser("explain", help="long explanation of a diagnostic code")
    p.add_argument("code", metavar="CODE")
    p.set_defaults(func=cmd_explain)
    p = sub.add_parser("targets", help="installed targets and their capabilities")
    p.set_defaults(func=cmd_targets)
    p = sub.add_parser("lsp", help="language server for .dml and the YAML form (stdio)")
    p.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default and only transport)")
    p.set_defaults(func=cmd_lsp)
    p = sub.add_parser("serve", help="stand-alone model server (TF-Serving REST API)")
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--name", default="model")
    p.set_defaults(func=cmd_serve)
    from dmlc.runcmd import add_parsers

    add_parsers(sub, report)  # submit, status, logs: runs on any target, through the target's `Runs`


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DmlError as exc:
        report(exc.diagnostics, getattr(args, "format", "human") if args.command == "check" else "human")
        return EXIT_USER
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # an internal error: say so plainly, show details only on request
        print(f"error[{DML900}]: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("  = note: this is a dmlc bug; please report it with the input file", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        else:
            print("  = help: rerun with --debug for the traceback", file=sys.stderr)
        return EXIT_USER


if __name__ == "__main__":
    sys.exit(main())
