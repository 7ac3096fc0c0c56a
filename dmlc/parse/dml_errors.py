"""Syntax errors of the `.dml` front end: lark's exceptions -> DML001/002/003/021 diagnostics.

Takes lark's exception, the source and the front end's lexer (to look at the tokens around the
error); gives one located diagnostic. Never imports the front end itself (no import cycle).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from dmlc.diagnostics.catalogue import DML001, DML002, DML003, DML021
from dmlc.diagnostics.model import Diagnostic, Label
from dmlc.source import Source, Span

READABLE = {
    "EQUAL": "`=`",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "NAME": "a name",
    "STRING": "a string",
    "MSTRING": "a string",
    "NUMBER": "a number",
    "REF": "a reference",
    "$END": "the end of the file",
}
OPENERS = {"LBRACE": "RBRACE", "LSQB": "RSQB"}


Lexer = Callable[[str], Iterable[Token]]


def syntax_error(exc: UnexpectedInput, source: Source, lex: Lexer) -> Diagnostic:
    if isinstance(exc, UnexpectedCharacters):
        return _bad_character(exc, source)
    assert isinstance(exc, UnexpectedToken)
    tokens = _tokens(source, lex)
    unit = _detached_unit(tokens, source)
    if unit is not None:
        return unit
    if exc.token.type == "$END":
        return _unclosed(tokens, source)
    return _unexpected(exc, source)


def _tok_span(source: Source, tok: Token) -> Span:
    return Span(source.path, tok.line or 1, tok.column or 1, tok.end_line or 1, tok.end_column or 1)


def _tokens(source: Source, lex: Lexer) -> list[Token]:
    try:
        return list(lex(source.text))
    except UnexpectedInput:
        return []


def _bad_character(exc: UnexpectedCharacters, source: Source) -> Diagnostic:
    line, col = exc.line, exc.column
    if exc.char == '"':
        end = len(source.line_text(line)) + 1
        span = Span(source.path, line, col, line, end)
        help_ = 'close the string with `"` on the same line, or use `"""` for a multi-line string'
        return Diagnostic(DML002, "unterminated string", Label(span, "this string is never closed"), help=help_)
    span = Span(source.path, line, col, line, col + 1)
    note = f"`{exc.char}` cannot appear here"
    return Diagnostic(DML001, f"unexpected character `{exc.char}`", Label(span, note), help=_hint(exc.char))


def _hint(char: str) -> str | None:
    if char == "'":
        return 'strings use double quotes: "..."'
    if char == ":":
        return "attributes are written `name = value` in .dml (YAML uses `name: value`)"
    return None


def _detached_unit(tokens: list[Token], source: Source) -> Diagnostic | None:
    """`10 parsecs`: a number, a space, then a word that starts no attribute or block."""
    padded = [*tokens, None, None]
    for i, (prev, tok) in enumerate(zip(tokens, tokens[1:], strict=False)):
        if prev.type != "NUMBER" or tok.type != "NAME" or prev.line != tok.line:
            continue
        nxt, after = padded[i + 2], padded[i + 3]
        starts_item = nxt is not None and nxt.type in ("EQUAL", "LBRACE")
        if starts_item or (nxt is not None and nxt.type == "NAME" and after is not None and after.type == "LBRACE"):
            continue
        return _unit_diag(prev, tok, _tok_span(source, tok))
    return None


def _unit_diag(number: Token, word: Token, span: Span) -> Diagnostic:
    message = f"`{word}` is not a unit: `{number} {word}` is a number followed by a stray word"
    help_ = "write the unit right after the number, e.g. `10s`, `30m`, `500m`, `2Gi`"
    return Diagnostic(DML021, message, Label(span, "not a unit"), help=help_)


def _unclosed(tokens: list[Token], source: Source) -> Diagnostic:
    stack: list[Token] = []
    for tok in tokens:
        if tok.type in OPENERS:
            stack.append(tok)
        elif tok.type in OPENERS.values() and stack:
            stack.pop()
    end = source.span(max(0, len(source.text.rstrip()) - 1))
    if not stack:
        return Diagnostic(DML003, "unexpected end of file", Label(end, "the file ends here"))
    guess = _by_indentation(tokens, source)
    if guess is not None:  # the outer blocks closed one `}` late: the one missing is where indentation says
        opener, ends = guess
        label = Label(_tok_span(source, opener), "this `{` is never closed")
        where = Label(ends, "by its indentation, the block ends before this line")
        help_ = "add `}` at the end of the block (lines indented more than the block's first line)"
        return Diagnostic(DML003, "missing `}`", label, (where, Label(end, "the file ends here")), help_)
    opener = stack[-1]
    closer = "}" if opener.type == "LBRACE" else "]"
    label = Label(_tok_span(source, opener), f"this `{opener}` is never closed")
    help_ = f"add `{closer}` where the block or list ends"
    return Diagnostic(DML003, f"missing `{closer}`", label, (Label(end, "the file ends here"),), help_)


def _by_indentation(tokens: list[Token], source: Source) -> tuple[Token, Span] | None:
    """The first `{` whose block, by indentation, ends at a line that does not close it (as rustc guesses
    an unclosed delimiter): the next line indented no more than the opener's line should start with `}`."""
    lines = source.text.split("\n")
    for tok in _multiline_openers(tokens):
        indent = _indent(lines[tok.line - 1])
        for number in range(tok.line + 1, len(lines) + 1):
            text = lines[number - 1]
            if not text.strip() or text.lstrip().startswith(("#", "//")):
                continue
            if _indent(text) <= indent:
                if not text.lstrip().startswith("}"):
                    return tok, Span(source.path, number, _indent(text) + 1, number, len(text) + 1)
                break
    return None


def _multiline_openers(tokens: list[Token]) -> list[Token]:
    """`{` tokens not closed on their own line (a one-line `memoize { }` says nothing by indentation)."""
    stack: list[Token] = []
    out: list[Token] = []
    for tok in tokens:
        if tok.type == "LBRACE":
            stack.append(tok)
        elif tok.type == "RBRACE" and stack:
            opener = stack.pop()
            if opener.line != tok.line:
                out.append(opener)
    out += [t for t in stack if t.line]
    return sorted(out, key=lambda t: (t.line, t.column))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _unexpected(exc: UnexpectedToken, source: Source) -> Diagnostic:
    tok = exc.token
    span = _tok_span(source, tok)
    expected = sorted({READABLE.get(t, f"`{t}`") for t in exc.expected if not t.startswith("__")})
    help_ = f"expected {', '.join(expected)}" if expected else None
    if tok.type == "EQUAL":
        help_ = "a block header is `KIND NAME {`; an attribute is `name = value`"
    return Diagnostic(DML001, f"unexpected `{tok}`", Label(span, "not expected here"), help=help_)
