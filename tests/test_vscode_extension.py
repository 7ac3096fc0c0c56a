"""The VS Code extension (editors/vscode): its manifest and language configuration agree with the
language, its TextMate grammar (run by VS Code's own engine, vscode-textmate + vscode-oniguruma, on
every example) scopes every token class and matches the committed snapshots, its client starts
`dmlc lsp`, and `vsce package` builds it offline.

The node parts need node and npm; their packages come from the extension's package-lock.json
(`npm ci`, from the npm registry). Without node, npm or the registry they are skipped, saying why.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from dmlc.ir.model import STEP_KINDS
from dmlc.parse.dml import LITERALS, NAMED_GROUPS

ROOT = Path(__file__).resolve().parents[1]
EXT = ROOT / "editors" / "vscode"


def manifest() -> dict:
    return json.loads((EXT / "package.json").read_text())


def grammar() -> dict:
    return json.loads((EXT / "syntaxes" / "dml.tmLanguage.json").read_text())


def test_manifest_contributes_the_language_grammar_and_schema() -> None:
    contributes = manifest()["contributes"]
    (language,) = contributes["languages"]
    assert language["id"] == "dml" and language["extensions"] == [".dml"]
    assert (EXT / language["configuration"]).is_file()
    (tm,) = contributes["grammars"]
    assert tm["scopeName"] == grammar()["scopeName"] == "source.dml" and (EXT / tm["path"]).is_file()
    (yaml,) = contributes["yamlValidation"]
    assert "*.dml.yaml" in yaml["fileMatch"]
    shipped = (EXT / yaml["url"]).read_text()  # a link to schema/, so it is the schema `dmlc schema` writes
    assert shipped == (ROOT / "schema" / "dmlc.schema.json").read_text()
    assert (EXT / manifest()["main"]).is_file() and (EXT / "README.md").is_file()


def test_grammar_knows_every_keyword_of_the_language() -> None:
    repo = grammar()["repository"]
    kinds = re.search(r"\(\?:\(([a-z|]+)\)", repo["step-header"]["match"]).group(1).split("|")
    assert sorted(kinds) == sorted(STEP_KINDS)
    named = re.search(r"\(([a-z|]+)\)", repo["named-block-header"]["match"]).group(1).split("|")
    assert sorted(named) == sorted(NAMED_GROUPS)
    assert sorted(re.findall(r"[a-z]+", repo["constants"]["match"].replace("\\b", " "))) == sorted(k for k in LITERALS)


def test_language_configuration_follows_the_lexical_rules() -> None:
    config = json.loads((EXT / "language-configuration.json").read_text())
    assert config["comments"]["lineComment"] == "#"
    assert config["brackets"] == [["{", "}"], ["[", "]"]]
    assert re.fullmatch(config["wordPattern"], "2Gi") and re.fullmatch(config["wordPattern"], "steps_per_epoch")


@pytest.fixture(scope="module")
def node_modules() -> Path:
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are not installed: the grammar and packaging tests need them")
    modules = EXT / "node_modules"
    if not _installed(modules):
        try:
            run = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund"], cwd=EXT, capture_output=True, text=True, timeout=600
            )
        except subprocess.TimeoutExpired:
            pytest.skip("`npm ci` in editors/vscode took more than 10 minutes (is the npm registry reachable?)")
        if run.returncode != 0:
            pytest.skip(f"`npm ci` in editors/vscode failed (is the npm registry reachable?): {run.stderr[-600:]}")
    return modules


def _installed(modules: Path) -> bool:
    """node_modules holds exactly what package-lock.json pins (npm's own record of what it installed)."""
    record = modules / ".package-lock.json"
    if not record.is_file():
        return False
    wanted = json.loads((EXT / "package-lock.json").read_text())["packages"]
    have = json.loads(record.read_text())["packages"]
    needed = {name: pin for name, pin in wanted.items() if name and not pin.get("optional")}  # optional: per platform
    return all(have.get(name, {}).get("version") == pin.get("version") for name, pin in needed.items())


def _node(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", script], cwd=EXT, capture_output=True, text=True, timeout=300)


def test_grammar_scopes_every_example_as_its_snapshot(node_modules: Path) -> None:
    run = _node("test/grammar.test.js")
    assert run.returncode == 0, run.stdout + run.stderr
    examples = sorted(p.name for p in (ROOT / "examples").glob("*.dml"))
    assert all(f"ok   {name}" in run.stdout for name in examples)
    assert "ok   every token class is scoped" in run.stdout
    assert {p.name.removesuffix(".snap") for p in (EXT / "test" / "snapshots").glob("*.snap")} == {
        *examples,
        "all_tokens.dml",
    }


def test_the_client_starts_dmlc_lsp(node_modules: Path) -> None:
    run = _node("test/extension.test.js")
    assert run.returncode == 0, run.stdout + run.stderr


def test_vsce_packages_the_extension_offline(node_modules: Path, tmp_path: Path) -> None:
    vsix = tmp_path / "dmlc.vsix"
    vsce = node_modules / ".bin" / "vsce"
    command = [str(vsce), "package", "--skip-license", "--allow-missing-repository", "-o", str(vsix)]
    run = subprocess.run(command, cwd=EXT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    names = set(zipfile.ZipFile(vsix).namelist())
    for needed in ("package.json", "extension.js", "syntaxes/dml.tmLanguage.json", "schemas/dmlc.schema.json",
                   "language-configuration.json", "node_modules/vscode-languageclient/package.json"):  # fmt: skip
        assert f"extension/{needed}" in names, needed
    assert not any(n.startswith(("extension/test/", "extension/node_modules/vscode-textmate/")) for n in names)
