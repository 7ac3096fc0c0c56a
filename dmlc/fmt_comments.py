"""Comments of a pipeline file anchored to key paths, so they can cross between the twins.

A comment on a line of its own belongs to the next key (`leading`); a comment after code belongs to
the last key on its line, or to the last key before it (`trailing`); comments after the last key
are the `footer`. `.dml` comments come from the grammar's lexer, YAML comments from the gaps
between PyYAML's tokens (so a `#` inside a string is never taken for one). The emitters of
`fmt_twin` place them by path; a comment whose key is written inline goes to the nearest key that
has a line of its own, and whatever is left goes to the footer: a comment is never dropped.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from dmlc.parse.document import Document, Path

MODELINE = "# yaml-language-server"


@dataclass
class Anchored:
    leading: dict[Path, list[str]] = field(default_factory=dict)
    trailing: dict[Path, list[str]] = field(default_factory=dict)
    blank: set[Path] = field(default_factory=set)  # keys with a blank line (or comment block) before them
    footer: list[str] = field(default_factory=list)

    def take_leading(self, path: Path) -> list[str]:
        return self.leading.pop(path, [])

    def take_trailing(self, path: Path) -> str:
        """The first comment after the key's code; more than one (`}  # a` lines) go to the footer."""
        found = self.trailing.pop(path, [""])
        self.footer[:0] = found[1:]
        return found[0]

    def rest(self) -> list[str]:
        """Comments no emitter placed (their keys were written inline): the caller writes them at the end."""
        out = [c for cs in self.leading.values() for c in cs] + [c for cs in self.trailing.values() for c in cs]
        self.leading.clear()
        self.trailing.clear()
        return out + self.footer


def raw_comments(text: str, yaml_form: bool) -> list[tuple[int, int, str]]:
    """(line, column, text) of every comment, in order."""
    return _yaml_comments(text) if yaml_form else _dml_comments(text)


def _dml_comments(text: str) -> list[tuple[int, int, str]]:
    from dmlc.parse.dml import _BUDGET, parser

    _BUDGET.reset()
    return [(t.line, t.column, t.value.rstrip()) for t in parser().lex(text, dont_ignore=True) if t.type == "COMMENT"]


def _yaml_comments(text: str) -> list[tuple[int, int, str]]:
    import yaml

    out, pos = [], 0
    for tok in yaml.scan(text, Loader=yaml.SafeLoader):
        out += _gap_comments(text, pos, tok.start_mark.index)
        pos = max(pos, tok.end_mark.index)
    out += _gap_comments(text, pos, len(text))
    return out


def _gap_comments(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    out = []
    gap = text[start:end]
    at = gap.find("#")
    while at >= 0:
        stop = gap.find("\n", at)
        stop = len(gap) if stop < 0 else stop
        offset = start + at
        line = text.count("\n", 0, offset) + 1
        col = offset - (text.rfind("\n", 0, offset) + 1) + 1
        out.append((line, col, gap[at:stop].rstrip()))
        at = gap.find("#", stop)
    return out


def anchor(doc: Document, yaml_form: bool) -> Anchored:
    """The file's comments, each given to a key path of `doc`."""
    text = doc.source.text
    keys = sorted((s.line, s.col, p) for p, s in doc.key_spans.items() if s is not None and p)
    lines = [k[0] for k in keys]
    src = text.splitlines()
    out = Anchored()
    for line, col, body in raw_comments(text, yaml_form):
        own = not src[line - 1][: col - 1].strip()
        if own:
            i = bisect.bisect_right(lines, line)
            if i < len(keys):
                out.leading.setdefault(keys[i][2], []).append(body)
            else:
                out.footer.append(body)
            continue
        i = bisect.bisect_right(lines, line) - 1
        target = keys[i][2] if i >= 0 else None
        if target is None:
            out.footer.append(body)
        else:
            out.trailing.setdefault(target, []).append(body)
    for line, _col, path in keys:
        above = line - 1 - len(out.leading.get(path, []))
        if above >= 1 and not src[above - 1].strip():
            out.blank.add(path)
    return out


def to_hash(comment: str) -> str:
    """A comment YAML can hold: `// x` becomes `# x` (YAML has only `#`)."""
    return "#" + comment[2:] if comment.startswith("//") else comment
