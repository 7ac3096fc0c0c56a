"""`dmlc lsp` end to end: `python -m dmlc.cli lsp` started as a subprocess and driven over stdio by
pygls's LSP client (JSON-RPC framing, initialize, didOpen/didChange, requests), as an editor does."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pygls")
from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

from dmlc.lsp.analysis import analyze

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "kfp", "hera", "kubernetes", "keras")

PIPELINE = """\
pipeline demo {
  params { epochs = 2 }

  ingest d {
    dataset = "digits"
  }

  train model {
    for_each = ["cnn", "mlp"]
    data   = d.dataset
    epochs = params.epochs
    resources { memory = 2Gi }
  }

  select best {
    models = model[*].model
    after  = [d]
  }
}
"""


class Session:
    """A language client on its own event loop thread, talking to one `dmlc lsp` process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = LanguageClient("dmlc-tests", "1")
        self.published: dict[str, list[lsp.PublishDiagnosticsParams]] = {}
        self.messages: list[lsp.ShowMessageParams] = []
        self.changed = threading.Condition()
        self.versions: dict[str, int] = {}

        @self.client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def _diagnostics(params: lsp.PublishDiagnosticsParams) -> None:
            with self.changed:
                self.published.setdefault(params.uri, []).append(params)
                self.changed.notify_all()

        @self.client.feature(lsp.WINDOW_SHOW_MESSAGE)
        def _message(params: lsp.ShowMessageParams) -> None:
            self.messages.append(params)

        started = time.perf_counter()
        self.run(self.client.start_io(sys.executable, "-m", "dmlc.cli", "lsp", cwd=str(ROOT)))
        init = lsp.InitializeParams(capabilities=lsp.ClientCapabilities(), root_uri=ROOT.as_uri(), process_id=None)
        self.capabilities = self.run(self.client.initialize_async(init)).capabilities
        self.startup_s = time.perf_counter() - started
        self.notify(self.client.initialized, lsp.InitializedParams())

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def notify(self, send: Callable[[Any], None], params: Any) -> None:
        async def go() -> None:
            send(params)

        self.run(go())

    def open(self, name: str, text: str, language: str = "dml") -> str:
        uri = (ROOT / "tests" / "lsp-scratch" / name).as_uri()
        self.versions[uri] = 1
        self.notify(self.client.text_document_did_open, lsp.DidOpenTextDocumentParams(
            lsp.TextDocumentItem(uri, language, 1, text)))  # fmt: skip
        return uri

    def change(self, uri: str, text: str) -> None:
        self.versions[uri] += 1
        whole = lsp.TextDocumentContentChangeWholeDocument(text)
        ident = lsp.VersionedTextDocumentIdentifier(self.versions[uri], uri)
        self.notify(self.client.text_document_did_change, lsp.DidChangeTextDocumentParams(ident, [whole]))

    def edit(self, uri: str, start: lsp.Position, end: lsp.Position, text: str) -> None:
        """An incremental change, as editors send them: replace the range with `text`."""
        self.versions[uri] += 1
        part = lsp.TextDocumentContentChangePartial(lsp.Range(start, end), text)
        ident = lsp.VersionedTextDocumentIdentifier(self.versions[uri], uri)
        self.notify(self.client.text_document_did_change, lsp.DidChangeTextDocumentParams(ident, [part]))

    def diagnostics(self, uri: str, timeout: float = 30) -> list[lsp.Diagnostic]:
        """The diagnostics published for the buffer's current version."""
        want = self.versions[uri]
        with self.changed:
            ok = self.changed.wait_for(lambda: any(p.version == want for p in self.published.get(uri, [])), timeout)
        assert ok, f"no diagnostics for version {want} of {uri}"
        return list(next(p for p in reversed(self.published[uri]) if p.version == want).diagnostics)

    def close(self) -> None:
        self.run(self.client.shutdown_async(None))
        self.notify(self.client.exit, None)
        self.run(self.client.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    s = Session()
    yield s
    s.close()


def position(text: str, marker: str, after: int = 0) -> lsp.Position:
    """The LSP position of the first `marker` in `text`, moved `after` characters to the right."""
    offset = text.index(marker) + after
    line = text.count("\n", 0, offset)
    return lsp.Position(line, offset - (text.rfind("\n", 0, offset) + 1))


def ident(uri: str) -> lsp.TextDocumentIdentifier:
    return lsp.TextDocumentIdentifier(uri)


def labels(result: Any) -> list[str]:
    items = result.items if isinstance(result, lsp.CompletionList) else result
    return [i.label for i in items]


def apply(text: str, edits: list[lsp.TextEdit]) -> str:
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(p: lsp.Position) -> int:
        return starts[min(p.line, len(lines))] + p.character

    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[: offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end) :]
    return text


def test_server_advertises_the_features(session: Session) -> None:
    caps = session.capabilities
    assert caps.completion_provider is not None and "." in caps.completion_provider.trigger_characters
    for feature in ("hover", "definition", "references", "rename", "document_symbol", "document_formatting"):
        assert getattr(caps, f"{feature}_provider"), feature
    print(f"\nLSP startup (spawn to initialize reply): {session.startup_s:.2f} s")


def test_diagnostic_on_open_has_the_full_range(session: Session) -> None:
    text = PIPELINE.replace("data   = d.dataset", "data   = dd.dataset")
    started = time.perf_counter()
    uri = session.open("error.dml", text)
    diags = session.diagnostics(uri)
    print(f"\nfirst diagnostics after didOpen: {time.perf_counter() - started:.3f} s")
    assert [d.code for d in diags] == ["DML012"]
    start = position(text, "dd.dataset")
    assert diags[0].range == lsp.Range(start, lsp.Position(start.line, start.character + len("dd.dataset")))
    assert "unknown step `dd`" in diags[0].message and "help:" in diags[0].message
    assert diags[0].severity == lsp.DiagnosticSeverity.Error and diags[0].source == "dmlc"


def test_diagnostics_follow_changes(session: Session) -> None:
    uri = session.open("changes.dml", PIPELINE)
    assert session.diagnostics(uri) == []
    broken = PIPELINE.replace('dataset = "digits"', 'dataset = "digits')
    session.change(uri, broken)
    (diag,) = session.diagnostics(uri)
    assert diag.code == "DML002" and diag.range.start == position(broken, '"digits')
    session.change(uri, PIPELINE.replace("memory = 2Gi", "memory = 2GB"))
    (diag,) = session.diagnostics(uri)
    assert diag.code == "DML021" and "`2Gi`" in diag.message  # the help names the spelling that works
    session.change(uri, PIPELINE)
    assert session.diagnostics(uri) == []
    at = position(PIPELINE, "digits")
    session.edit(uri, at, lsp.Position(at.line, at.character + len("digits")), "mnist_x")
    (diag,) = session.diagnostics(uri)
    assert diag.code == "DML023" and diag.range.start == position(PIPELINE, '"digits')


def test_ranges_count_utf16_code_units(session: Session) -> None:
    text = PIPELINE.replace("  params {", '  description = "🚀 fast"  namespace = 3\n  params {')
    uri = session.open("utf16.dml", text)
    (diag,) = session.diagnostics(uri)
    start = position(text, "3\n")
    assert diag.range.start == lsp.Position(start.line, start.character + 1)  # the rocket is two UTF-16 units


def test_duplicate_step_reports_both_places(session: Session) -> None:
    text = PIPELINE.replace("select best {", "select d {")
    uri = session.open("duplicate.dml", text)
    (diag,) = session.diagnostics(uri)
    assert diag.code == "DML013"
    (related,) = diag.related_information
    assert related.location.range.start == position(text, "d {")


def test_yaml_form_diagnostics(session: Session) -> None:
    text = (ROOT / "examples" / "quickstart.yaml").read_text().replace("batch: 32", "batch: 32\n    shuffel: true")
    uri = session.open("quick.yaml", text, "yaml")
    (diag,) = session.diagnostics(uri)
    assert diag.code == "DML011" and "`shuffle`" in diag.message
    start = position(text, "shuffel")
    assert diag.range == lsp.Range(start, lsp.Position(start.line, start.character + len("shuffel")))


def complete(session: Session, uri: str, at: lsp.Position) -> list[str]:
    return labels(session.run(session.client.text_document_completion_async(lsp.CompletionParams(ident(uri), at))))


def test_completion_of_block_kinds(session: Session) -> None:
    text = PIPELINE.replace("  ingest d {", "  \n  ingest d {")
    uri = session.open("kinds.dml", text)
    found = complete(session, uri, position(text, "  \n  ingest", 2))
    assert {"ingest", "train", "evaluate", "select", "serve", "task", "volume"} <= set(found)
    assert "description" in found and "dataset" not in found
    yaml = (ROOT / "examples" / "quickstart.yaml").read_text().replace("kind: select", "kind: ")
    uri = session.open("kinds.yaml", yaml, "yaml")
    found = complete(session, uri, position(yaml, "kind: \n", len("kind: ")))
    assert found == ["ingest", "train", "evaluate", "select", "serve", "task", "finally"]


def test_completion_inside_a_train_block(session: Session) -> None:
    text = PIPELINE.replace("    epochs = params.epochs\n", "    epochs = params.epochs\n    \n")
    uri = session.open("train.dml", text)
    found = complete(session, uri, position(text, "epochs\n    \n", len("epochs\n    ")))
    assert {"strategy", "workers", "optimizer", "checkpoint", "retry", "timeout"} <= set(found)
    assert "dataset" not in found and "data" not in found and "epochs" not in found  # other kinds', already set
    strategy = text.replace("    \n", "    strategy = \n")
    session.change(uri, strategy)
    assert complete(session, uri, position(strategy, "strategy = ", len("strategy = "))) == [
        "single", "mirrored", "allreduce", "parameter_server"]  # fmt: skip
    units = text.replace("memory = 2Gi", "memory = 512")
    session.change(uri, units)
    found = complete(session, uri, position(units, "memory = 512", len("memory = 512")))
    assert "512Mi" in found and "512Gi" in found and "512s" not in found


def test_completion_of_outputs_after_a_step_name(session: Session) -> None:
    text = PIPELINE.replace("data   = d.dataset", "data = d.")
    uri = session.open("ref.dml", text)
    assert complete(session, uri, position(text, "data = d.", len("data = d."))) == ["dataset"]
    found = complete(session, uri, position(text, "models = model[*].", len("models = model[*].")))
    assert found == ["model", "metrics"]
    found = complete(session, uri, position(text, "epochs = params.", len("epochs = params.")))
    assert found == ["epochs"]
    steps = text.replace("data = d.", "data = ")
    session.change(uri, steps)
    found = complete(session, uri, position(steps, "data = ", len("data = ")))
    assert "d" in found and "best" in found and "model" not in found  # not the step itself


def test_completion_of_references_in_yaml(session: Session) -> None:
    yaml = (ROOT / "examples" / "quickstart.yaml").read_text().replace("${best.model}", "${best.")
    uri = session.open("ref.yaml", yaml, "yaml")
    assert complete(session, uri, position(yaml, "${best.", len("${best."))) == ["model", "metrics"]


def hover_text(session: Session, uri: str, at: lsp.Position) -> str:
    result = session.run(session.client.text_document_hover_async(lsp.HoverParams(ident(uri), at)))
    assert result is not None
    return result.contents.value


def test_hover_shows_description_type_default_and_units(session: Session) -> None:
    uri = session.open("hover.dml", PIPELINE)
    epochs = hover_text(session, uri, position(PIPELINE, "epochs = params", 2))
    assert "Training epochs" in epochs and "integer ≥ 1" in epochs and "*default*: `1`" in epochs
    memory = hover_text(session, uri, position(PIPELINE, "memory", 1))
    assert "Memory request" in memory and "`Gi`" in memory and "`Mi`" in memory
    step = hover_text(session, uri, position(PIPELINE, "d.dataset"))
    assert "**ingest** step `d`" in step and "`dataset` (artifact)" in step
    kind = hover_text(session, uri, position(PIPELINE, "train model", 1))
    assert "**train** step" in kind and "`model` (artifact)" in kind


def test_go_to_definition_and_references(session: Session) -> None:
    uri = session.open("nav.dml", PIPELINE)
    at = position(PIPELINE, "model[*]", 2)
    (found,) = session.run(session.client.text_document_definition_async(lsp.DefinitionParams(ident(uri), at)))
    start = position(PIPELINE, "model {")
    assert found.uri == uri and found.range == lsp.Range(start, lsp.Position(start.line, start.character + 5))
    context = lsp.ReferenceContext(include_declaration=True)
    params = lsp.ReferenceParams(text_document=ident(uri), position=position(PIPELINE, "d {"), context=context)
    refs = session.run(session.client.text_document_references_async(params))
    assert [r.range.start for r in refs] == [position(PIPELINE, "d {"), position(PIPELINE, "d.dataset"),
                                            position(PIPELINE, "d]")]  # fmt: skip


def test_rename_a_step_and_all_its_references(session: Session) -> None:
    uri = session.open("rename.dml", PIPELINE)
    params = lsp.RenameParams(ident(uri), position(PIPELINE, "d.dataset"), "raw")
    edit = session.run(session.client.text_document_rename_async(params))
    renamed = apply(PIPELINE, edit.changes[uri])
    assert "ingest raw {" in renamed and "data   = raw.dataset" in renamed and "after  = [raw]" in renamed
    assert analyze(renamed, "renamed.dml").diagnostics == []
    with pytest.raises(Exception, match="already exists"):
        session.run(session.client.text_document_rename_async(lsp.RenameParams(ident(uri), params.position, "best")))
    with pytest.raises(Exception, match="not a step name"):
        session.run(session.client.text_document_rename_async(lsp.RenameParams(ident(uri), params.position, "9x")))


def test_rename_in_yaml(session: Session) -> None:
    yaml = (ROOT / "examples" / "quickstart.yaml").read_text()
    uri = session.open("rename.yaml", yaml, "yaml")
    params = lsp.RenameParams(ident(uri), position(yaml, "  model:", 2), "net")
    renamed = apply(yaml, session.run(session.client.text_document_rename_async(params)).changes[uri])
    assert "  net:\n" in renamed and "${net[*].model}" in renamed and analyze(renamed, "r.yaml").diagnostics == []


def test_document_symbols_are_the_steps(session: Session) -> None:
    uri = session.open("symbols.dml", PIPELINE)
    found = session.run(session.client.text_document_document_symbol_async(lsp.DocumentSymbolParams(ident(uri))))
    steps = [(s.name, s.detail) for s in found if s.kind == lsp.SymbolKind.Function]
    assert steps == [("d", "ingest"), ("model", "train"), ("best", "select")]


def test_folding_ranges_are_the_blocks(session: Session) -> None:
    uri = session.open("folds.dml", PIPELINE)
    found = session.run(session.client.text_document_folding_range_async(lsp.FoldingRangeParams(ident(uri))))
    lines = PIPELINE.splitlines()
    assert [(lines[f.start_line].strip(), lines[f.end_line].strip()) for f in found] == [
        ("ingest d {", "}"), ("train model {", "}"), ("select best {", "}")]  # fmt: skip


def test_formatting_goes_through_dmlc_fmt(session: Session) -> None:
    from dmlc.fmt import formatted

    messy = 'pipeline demo {\n ingest d {dataset="digits"}\n train model { data = d.dataset }\n}\n'
    uri = session.open("fmt.dml", messy)
    opts = lsp.FormattingOptions(tab_size=2, insert_spaces=True)
    edits = session.run(session.client.text_document_formatting_async(lsp.DocumentFormattingParams(ident(uri), opts)))
    assert apply(messy, edits) == formatted(messy, "fmt.dml")
    commented = messy.replace(" train model", " # keep me\n train model")
    session.change(uri, commented)
    edits = session.run(session.client.text_document_formatting_async(lsp.DocumentFormattingParams(ident(uri), opts)))
    assert "  # keep me\n  train model {" in apply(commented, edits)  # comments are kept (issue 13)


@pytest.mark.parametrize("example", ["fashion_mnist.dml", "metadata.dml", "quickstart.yaml"])
def test_every_cursor_position_of_a_half_written_file_is_answered(example: str) -> None:
    """Completion, hover and navigation at every position of an example cut in half (as while typing)."""
    from dmlc.lsp.completion import Known, complete
    from dmlc.lsp.context import dml_context
    from dmlc.lsp.hover import hover
    from dmlc.lsp.yaml_context import yaml_context

    full = (ROOT / "examples" / example).read_text()
    yaml = example.endswith(".yaml")
    for text in (full, full[: len(full) // 2]):
        result = analyze(text, example)
        for offset in range(0, len(text) + 1, 5):
            ctx = (yaml_context if yaml else dml_context)(text, offset)
            complete(ctx, Known(result.steps(), {}), yaml)
            line = text.count("\n", 0, offset) + 1
            hover(result, line, offset - text.rfind("\n", 0, offset), offset)


def test_the_server_imports_no_tensorflow_kfp_or_hera() -> None:
    probe = (
        "import sys, time; t = time.perf_counter(); import dmlc.cli, dmlc.lsp.server; "
        "from dmlc.lsp.analysis import analyze; analyze(open('examples/fashion_mnist.dml').read(), 'f.dml'); "
        f"print(time.perf_counter() - t); print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    seconds, heavy = out.splitlines()
    print(f"\nimport dmlc.lsp.server + first analysis: {float(seconds):.2f} s")
    assert heavy == "[]"
