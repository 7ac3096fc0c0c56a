"""`dmlc lsp`: the language server (pygls, over stdio) for `.dml` files and the YAML form.

Each buffer is checked as `dmlc check` checks a file (`dmlc.lsp.analysis`, through the driver) when it
opens and, shortly after each change, when it changes; the result also serves hover, go to
definition, references, rename and symbols. Completion reads the cursor's context from the text
itself, so it works in the middle of an edit. Nothing here imports TensorFlow, kfp or hera.
"""

from __future__ import annotations

import asyncio

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from dmlc import __version__
from dmlc.lsp import navigate
from dmlc.lsp.analysis import Analysis, analyze, source_path
from dmlc.lsp.completion import Known, complete
from dmlc.lsp.context import dml_context
from dmlc.lsp.convert import SYMBOL_KINDS, Positions, completion_item, diagnostic
from dmlc.lsp.formatting import formatted
from dmlc.lsp.hover import hover
from dmlc.lsp.yaml_context import yaml_context

DEBOUNCE_S = 0.15  # a change is checked once typing pauses this long


class DmlcServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("dmlc", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
        self.analyses: dict[str, Analysis] = {}
        self.known: dict[str, Known] = {}  # from the last buffer text that parsed: steps and params
        self.timers: dict[str, asyncio.TimerHandle] = {}

    def analysis(self, uri: str) -> Analysis:
        """The buffer's analysis, recomputed when its text changed since the last one."""
        doc = self.workspace.get_text_document(uri)
        found = self.analyses.get(uri)
        if found is None or found.text != doc.source:
            found = analyze(doc.source, source_path(_path(uri), doc.language_id))
            self.analyses[uri] = found
            if found.document is not None:
                params = found.document.data.get("params")
                self.known[uri] = Known(found.steps(), params if isinstance(params, dict) else {})
        return found

    def publish(self, uri: str) -> None:
        self.timers.pop(uri, None)
        doc = self.workspace.get_text_document(uri)
        result = self.analysis(uri)
        positions = Positions(doc)
        diags = [diagnostic(d, positions, uri) for d in result.diagnostics]
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri, diags, doc.version))

    def publish_later(self, uri: str) -> None:
        pending = self.timers.pop(uri, None)
        if pending is not None:
            pending.cancel()
        self.timers[uri] = asyncio.get_running_loop().call_later(DEBOUNCE_S, self.publish, uri)


def _path(uri: str) -> str:
    """The file a URI names (its suffix picks the syntax); the URI itself for unsaved buffers."""
    return to_fs_path(uri) or uri


server = DmlcServer()


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: DmlcServer, params: lsp.DidOpenTextDocumentParams) -> None:
    ls.publish(params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: DmlcServer, params: lsp.DidChangeTextDocumentParams) -> None:
    ls.publish_later(params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: DmlcServer, params: lsp.DidSaveTextDocumentParams) -> None:
    ls.publish(params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: DmlcServer, params: lsp.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    pending = ls.timers.pop(uri, None)
    if pending is not None:
        pending.cancel()
    ls.analyses.pop(uri, None)
    ls.known.pop(uri, None)
    ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri, []))


@server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=[".", "{", "$", '"', "[", "="]))
def completion(ls: DmlcServer, params: lsp.CompletionParams) -> lsp.CompletionList:
    uri = params.text_document.uri
    doc = ls.workspace.get_text_document(uri)
    result = ls.analysis(uri)
    _, _, offset = Positions(doc).cursor(params.position)
    ctx = (yaml_context if result.is_yaml else dml_context)(doc.source, offset)
    known = ls.known.get(uri, Known({}, {}))
    if result.document is not None:
        known = Known(result.steps(), known.params)
    items = [completion_item(i) for i in complete(ctx, known, result.is_yaml)]
    return lsp.CompletionList(is_incomplete=False, items=items)


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
def on_hover(ls: DmlcServer, params: lsp.HoverParams) -> lsp.Hover | None:
    positions = Positions(ls.workspace.get_text_document(params.text_document.uri))
    line, col, offset = positions.cursor(params.position)
    found = hover(ls.analysis(params.text_document.uri), line, col, offset)
    if found is None:
        return None
    content = lsp.MarkupContent(lsp.MarkupKind.Markdown, found.markdown)
    return lsp.Hover(content, positions.one_line(found.line, found.col, found.end_col))


def _occurrence(ls: DmlcServer, uri: str, position: lsp.Position) -> tuple[Positions, Analysis, navigate.Occurrence]:
    """The step name under the cursor; an error reply when there is none (or the text does not parse)."""
    positions = Positions(ls.workspace.get_text_document(uri))
    result = ls.analysis(uri)
    line, col, _ = positions.cursor(position)
    occ = navigate.at(result.document, line, col) if result.document is not None else None
    if occ is None:
        raise JsonRpcInvalidParams("no step name here (or the file has a syntax error)")
    return positions, result, occ


def _locations(ls: DmlcServer, uri: str, position: lsp.Position, definitions: bool, uses: bool) -> list[lsp.Location]:
    """Where the step under the cursor is defined and/or used; [] when the cursor is on no step name."""
    try:
        positions, result, occ = _occurrence(ls, uri, position)
    except JsonRpcInvalidParams:
        return []
    assert result.document is not None
    found = [o for o in navigate.of_name(result.document, occ.name) if (definitions if o.definition else uses)]
    return [lsp.Location(uri, positions.one_line(o.line, o.col, o.end_col)) for o in found]


@server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
def definition(ls: DmlcServer, params: lsp.DefinitionParams) -> list[lsp.Location]:
    return _locations(ls, params.text_document.uri, params.position, definitions=True, uses=False)


@server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
def references(ls: DmlcServer, params: lsp.ReferenceParams) -> list[lsp.Location]:
    include = params.context.include_declaration
    return _locations(ls, params.text_document.uri, params.position, definitions=include, uses=True)


@server.feature(lsp.TEXT_DOCUMENT_PREPARE_RENAME)
def prepare_rename(ls: DmlcServer, params: lsp.PrepareRenameParams) -> lsp.PrepareRenamePlaceholder:
    positions, _, occ = _occurrence(ls, params.text_document.uri, params.position)
    return lsp.PrepareRenamePlaceholder(positions.one_line(occ.line, occ.col, occ.end_col), occ.name)


@server.feature(lsp.TEXT_DOCUMENT_RENAME)
def rename(ls: DmlcServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit:
    uri = params.text_document.uri
    positions, result, occ = _occurrence(ls, uri, params.position)
    assert result.document is not None
    why = navigate.rename_error(result.document, occ.name, params.new_name)
    if why:
        raise JsonRpcInvalidParams(why)
    edits = [
        lsp.TextEdit(positions.one_line(o.line, o.col, o.end_col), params.new_name)
        for o in navigate.of_name(result.document, occ.name)
    ]
    return lsp.WorkspaceEdit(changes={uri: edits})


@server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def document_symbols(ls: DmlcServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
    result = ls.analysis(params.text_document.uri)
    if result.document is None:
        return []
    positions = Positions(ls.workspace.get_text_document(params.text_document.uri))
    return [
        lsp.DocumentSymbol(
            name=s.name,
            kind=SYMBOL_KINDS[s.kind],
            range=positions.range(s.span),
            selection_range=positions.range(s.name_span),
            detail=s.detail,
        )
        for s in navigate.symbols(result.document)
    ]


@server.feature(lsp.TEXT_DOCUMENT_FOLDING_RANGE)
def folding_ranges(ls: DmlcServer, params: lsp.FoldingRangeParams) -> list[lsp.FoldingRange]:
    result = ls.analysis(params.text_document.uri)
    if result.document is None:
        return []
    return [lsp.FoldingRange(start - 1, end - 1) for start, end in navigate.folds(result.document)]


@server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: DmlcServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
    uri = params.text_document.uri
    doc = ls.workspace.get_text_document(uri)
    result = formatted(doc.source, source_path(_path(uri), doc.language_id))
    if result.text is None:
        ls.window_show_message(lsp.ShowMessageParams(lsp.MessageType.Warning, f"dmlc fmt: {result.reason}"))
        return None
    if result.text == doc.source:
        return []
    return [lsp.TextEdit(Positions(doc).whole(), result.text)]


def serve() -> None:
    """Serve over stdin/stdout until the client says exit."""
    server.start_io()
