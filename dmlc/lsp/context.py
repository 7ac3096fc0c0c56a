"""Where the cursor is in a `.dml` text that may not parse (the user is typing): for completion and hover.

A complete file is read through the parsed `Document`; text in the middle of an edit (`data = d.`,
`kind `, an unclosed block) has no Document, so this scanner reads the blocks around the cursor from
tokens alone: the path of blocks (in the Document's shape, e.g. ("steps", "model", "resources")), the
steps declared so far with their kinds, and what the cursor is on (an attribute name, a value, a
reference after `name.`). It never reports errors: that is the parser's job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dmlc.lsp.fields import NAMED_GROUPS

TOKEN = re.compile(
    r"(?P<comment>(?:#|//)[^\n]*)"
    r'|(?P<mstring>"""[\s\S]*?(?:"""|\Z))'
    r'|(?P<string>"(?:[^"\\\n]|\\.)*(?:"|$))'
    r"|(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[A-Za-z]*)"
    r"|(?P<word>[A-Za-z_]\w*(?:\.\w*|\[(?:\d+|\*)\])*)"
    r"|(?P<punct>[{}\[\]=,])"
    r"|(?P<space>\s+)"
    r"|(?P<other>.)",
    re.MULTILINE,
)
GROUP_OF = {keyword: group for group, keyword in NAMED_GROUPS.items() if keyword}  # volume -> volumes


@dataclass
class Token:
    kind: str
    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass
class Context:
    """What is at the cursor.

    `where` is "key" (an attribute or block may start here), "value" (after `attr =`, or in its list),
    "ref" (after `root.`: `root` is set, `prefix` is what follows the last dot), "name" (naming a new
    block) or "none" (in a comment or a string). `path` is the enclosing block's Document path."""

    where: str
    path: tuple[str, ...] = ()
    attr: str | None = None
    prefix: str = ""
    root: str | None = None
    steps: dict[str, str] = field(default_factory=dict)  # step name -> kind, as declared so far
    keys: set[str] = field(default_factory=set)  # attributes already set in the enclosing block
    params: set[str] = field(default_factory=set)  # the pipeline's params, as declared in the whole text
    quoted: bool = False  # the value is being written inside an opened `"`


def tokens(text: str) -> list[Token]:
    return [Token(m.lastgroup or "other", m.group(), m.start()) for m in TOKEN.finditer(text) if m.lastgroup != "space"]


def outline(text: str, toks: list[Token] | None = None) -> tuple[dict[str, str], set[str]]:
    """Every `KIND NAME {` at pipeline level (step name -> kind; volumes and targets left out), and the params."""
    scanner = _Scanner().run(tokens(text) if toks is None else toks, len(text) + 1)
    return scanner.steps, scanner.params


def dml_context(text: str, offset: int) -> Context:
    """The context at `offset` (a character index into `text`)."""
    toks = tokens(text)
    scanner = _Scanner().run(toks, offset)
    scanner.all_steps, params = outline(text, toks)
    cursor = next((t for t in toks if t.start < offset <= t.end), None)
    if cursor is not None and cursor.kind in ("comment", "mstring", "string") and _inside(cursor, offset):
        found = _in_text(cursor, offset, scanner)
    else:
        typed = cursor is not None and cursor.kind in ("word", "number")
        found = scanner.context(cursor.text[: offset - cursor.start] if typed else "")
    found.params = params
    return found


def _inside(tok: Token, offset: int) -> bool:
    """The cursor is in the comment or string (not just after its closing quote)."""
    closed = tok.kind == "string" and len(tok.text) > 1 and tok.text.endswith('"')
    closed = closed or (tok.kind == "mstring" and len(tok.text) >= 6 and tok.text.endswith('"""'))
    return offset < tok.end or not closed


def _open_at_end(tok: Token, offset: int) -> bool:
    """A token ending at the cursor that the cursor is still in: a word being typed, an open string."""
    return tok.kind in ("word", "number") or (tok.kind in ("comment", "mstring", "string") and _inside(tok, offset))


def _in_text(tok: Token, offset: int, scanner: _Scanner) -> Context:
    """Inside a value's string: `${...}` references, else the value itself (an enum); in a comment nothing."""
    before = tok.text[: offset - tok.start]
    opened = before.rfind("${")
    if tok.kind == "string" and opened < 0 and scanner.attr() is not None:
        return Context("value", scanner.path(), scanner.attr(), before[1:], steps=scanner.all_steps, quoted=True)
    if tok.kind == "comment" or opened < 0 or "}" in before[opened:]:
        return Context("none", scanner.path(), steps=scanner.all_steps)
    return _ref_context(before[opened + 2 :], scanner.path(), scanner.all_steps, scanner.attr())


def _ref_context(partial: str, path: tuple[str, ...], steps: dict[str, str], attr: str | None) -> Context:
    if "." not in partial:
        return Context("ref", path, attr, partial.strip(), None, steps)
    root = re.split(r"[.\[]", partial, maxsplit=1)[0]
    return Context("ref", path, attr, partial.rsplit(".", 1)[1], root, steps)


@dataclass
class _Frame:
    path: tuple[str, ...]
    keys: set[str] = field(default_factory=set)


class _Scanner:
    """Blocks and statements up to the cursor; `pending` holds the tokens of the statement being written."""

    def __init__(self) -> None:
        self.frames: list[_Frame] = []
        self.pending: list[Token] = []
        self.lists: list[str | None] = []  # the attribute each open `[` belongs to
        self.all_steps: dict[str, str] = {}  # every step of the text, also those after the cursor
        self.steps: dict[str, str] = {}
        self.params: set[str] = set()

    def run(self, toks: list[Token], offset: int) -> _Scanner:
        for tok in toks:
            if tok.end > offset or (tok.end == offset and _open_at_end(tok, offset)):
                break
            self._feed(tok)
        return self

    def _feed(self, tok: Token) -> None:
        if tok.kind == "comment":
            return
        if tok.text == "{":
            self._open()
        elif tok.text == "}":
            self._close()
        elif tok.text == "[":
            self.lists.append(self.attr())
        elif tok.text == "]":
            self.lists and self.lists.pop()
            self._done()
        elif tok.text == "=":
            self.pending.append(tok)
        elif tok.text != ",":
            self._operand(tok)

    def _operand(self, tok: Token) -> None:
        if self.lists:
            return
        if self._after_equals():
            self._done()
        elif len(self.pending) >= 2:
            self.pending = [tok]
        else:
            self.pending.append(tok)

    def _after_equals(self) -> bool:
        return len(self.pending) >= 2 and self.pending[-1].text == "="

    def _done(self) -> None:
        if not self.lists:
            if self.pending and self.frames:
                self.frames[-1].keys.add(_key(self.pending[0]))
                if self.frames[-1].path == ("params",):
                    self.params.add(_key(self.pending[0]))
            self.pending = []

    def _open(self) -> None:
        words = [t for t in self.pending if t.text != "="]
        parent = self.frames[-1].path if self.frames else None
        if parent is None:  # `pipeline NAME {`
            self.frames.append(_Frame(()))
        elif len(words) == 2 and not self._after_equals() and parent == ():
            kind, name = words[0].text, _key(words[1])
            group = GROUP_OF.get(kind, "steps")
            if group == "steps":
                self.steps[name] = kind
            self.frames.append(_Frame((group, name)))
        else:
            key = _key(words[0]) if words else (self.attr() or "?")
            self.frames[-1].keys.add(key)
            self.frames.append(_Frame((*parent, key)))
        self.pending = []

    def _close(self) -> None:
        if self.frames:
            self.frames.pop()
        self.pending = []
        self._done()

    def attr(self) -> str | None:
        """The attribute whose value is being written, if any."""
        if self.lists:
            return self.lists[-1]
        return _key(self.pending[0]) if self._after_equals() else None

    def path(self) -> tuple[str, ...]:
        return self.frames[-1].path if self.frames else ()

    def context(self, partial: str) -> Context:
        steps = self.all_steps
        keys = self.frames[-1].keys if self.frames else set()
        if not self.frames:
            return Context("key" if not self.pending else "name", (), prefix=partial, steps=steps)
        if self.lists or self._after_equals():
            if "." in partial or "[" in partial:
                return _ref_context(partial, self.path(), steps, self.attr())
            return Context("value", self.path(), self.attr(), partial, steps=steps, keys=keys)
        if self.pending:
            return Context("name", self.path(), prefix=partial, steps=steps, keys=keys)
        return Context("key", self.path(), prefix=partial, steps=steps, keys=keys)


def _key(tok: Token) -> str:
    return tok.text[1:-1] if tok.kind == "string" else tok.text
