// The TextMate grammar of .dml (syntaxes/dml.tmLanguage.json), tokenized by VS Code's own engine
// (vscode-textmate + vscode-oniguruma) on every example and on test/fixtures/all_tokens.dml:
//  - no text is left unscoped, nothing in a valid file is scoped invalid;
//  - every token class of the language gets its scope (checked on the fixture);
//  - the tokens of each file match its committed snapshot in test/snapshots/ (`--update` rewrites them).
// Usage: node test/grammar.test.js [--update]
"use strict";

const fs = require("fs");
const path = require("path");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

const HERE = __dirname;
const GRAMMAR = path.join(HERE, "..", "syntaxes", "dml.tmLanguage.json");
const EXAMPLES = path.join(HERE, "..", "..", "..", "examples");
const FIXTURE = path.join(HERE, "fixtures", "all_tokens.dml");
const SNAPSHOTS = path.join(HERE, "snapshots");
const UPDATE = process.argv.includes("--update");

// every token class of the language -> a scope the fixture must show for it
const CLASSES = {
  "comment (#)": "comment.line.number-sign.dml",
  "comment (//)": "comment.line.double-slash.dml",
  "pipeline keyword": "keyword.other.pipeline.dml",
  "pipeline name": "entity.name.type.pipeline.dml",
  "step kind": "storage.type.step.dml",
  "step name": "entity.name.function.step.dml",
  "volume keyword": "storage.type.volume.dml",
  "volume name": "entity.name.type.volume.dml",
  "target keyword": "storage.type.target.dml",
  "target name": "entity.name.type.target.dml",
  "sub-block keyword": "entity.name.section.block.dml",
  "attribute name": "variable.other.property.dml",
  "quoted attribute name": "variable.other.property.quoted.dml",
  "=": "keyword.operator.assignment.dml",
  "string": "string.quoted.double.dml",
  "multi-line string": "string.quoted.triple.dml",
  "escape": "constant.character.escape.dml",
  "$${ escape": "constant.character.escape.dollar.dml",
  "interpolation ${...}": "meta.interpolation.dml",
  "true/false/null": "constant.language.dml",
  "integer": "constant.numeric.integer.dml",
  "float": "constant.numeric.float.dml",
  "unit number": "constant.numeric.dml",
  "unit": "keyword.other.unit.dml",
  "params / each": "variable.language.dml",
  "step reference": "variable.other.reference.dml",
  "output of a reference": "variable.other.member.dml",
  ". in a reference": "punctuation.accessor.dml",
  "[*] / [0] index": "keyword.operator.index.dml",
  "{ }": "punctuation.section.block.begin.dml",
  "[ ]": "punctuation.section.brackets.begin.dml",
  ",": "punctuation.separator.comma.dml",
};

// exact tokens of the fixture: [text, scope it must carry]
const EXPECT = [
  ["train", "storage.type.step.dml"],
  ["model", "entity.name.function.step.dml"],
  ["Gi", "keyword.other.unit.dml"],
  ["500", "constant.numeric.dml"],
  ["*", "keyword.operator.index.dml"],
  ["-1", "constant.numeric.integer.dml"],
  ["1e3", "constant.numeric.float.dml"],
  ["each", "variable.language.dml"],
  ["\\t", "constant.character.escape.dml"],
  ["\\u00e9", "constant.character.escape.dml"],
];

async function loadGrammar() {
  const wasm = fs.readFileSync(path.join(path.dirname(require.resolve("vscode-oniguruma")), "onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (text) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async (scope) =>
      scope === "source.dml" ? vsctm.parseRawGrammar(fs.readFileSync(GRAMMAR, "utf8"), GRAMMAR) : null,
  });
  return registry.loadGrammar("source.dml");
}

function tokenize(grammar, text) {
  const out = [];
  let stack = vsctm.INITIAL;
  for (const line of text.split(/\r?\n/)) {
    const result = grammar.tokenizeLine(line, stack);
    const tokens = result.tokens.map((t) => ({ text: line.slice(t.startIndex, t.endIndex), scopes: t.scopes }));
    out.push({ line, tokens });
    stack = result.ruleStack;
  }
  return out;
}

function snapshot(lines) {
  const parts = [];
  for (const { line, tokens } of lines) {
    parts.push(`> ${line}`);
    for (const t of tokens) {
      if (t.text.trim()) {
        parts.push(`  ${JSON.stringify(t.text)}  ${t.scopes.slice(1).join(" ")}`);
      }
    }
  }
  return parts.join("\n") + "\n";
}

function problems(name, lines) {
  const found = [];
  lines.forEach(({ tokens }, i) => {
    for (const t of tokens) {
      if (!t.text.trim()) continue;
      if (t.scopes.length < 2) found.push(`${name}:${i + 1}: unscoped ${JSON.stringify(t.text)}`);
      if (t.scopes.some((s) => s.startsWith("invalid"))) found.push(`${name}:${i + 1}: invalid ${JSON.stringify(t.text)}`);
    }
  });
  return found;
}

function classProblems(lines) {
  const scopes = new Set(lines.flatMap(({ tokens }) => tokens.flatMap((t) => t.scopes)));
  const found = Object.entries(CLASSES)
    .filter(([, scope]) => !scopes.has(scope))
    .map(([what, scope]) => `token class ${what}: no token scoped ${scope} in the fixture`);
  const tokens = lines.flatMap((l) => l.tokens);
  for (const [text, scope] of EXPECT) {
    if (!tokens.some((t) => t.text === text && t.scopes.includes(scope))) found.push(`${JSON.stringify(text)} is not ${scope}`);
  }
  return found;
}

function checkSnapshot(name, lines) {
  const file = path.join(SNAPSHOTS, `${name}.snap`);
  const text = snapshot(lines);
  if (UPDATE) {
    fs.mkdirSync(SNAPSHOTS, { recursive: true });
    fs.writeFileSync(file, text);
    return [];
  }
  if (!fs.existsSync(file)) return [`${name}: no snapshot (run: node test/grammar.test.js --update)`];
  if (fs.readFileSync(file, "utf8") === text) return [];
  const want = fs.readFileSync(file, "utf8").split("\n");
  const got = text.split("\n");
  const at = got.findIndex((l, i) => l !== want[i]);
  return [
    `${name}: differs from its snapshot at line ${at + 1}: want ${JSON.stringify(want[at])}, got ${JSON.stringify(got[at])}` +
      " (an example or the grammar changed? review the tokens, then: cd editors/vscode && npm run update-snapshots)",
  ];
}

function brokenInput(grammar) {
  const lines = tokenize(grammar, 'pipeline p {\n  x = "never closed\n  y = 1 @\n}');
  const invalid = lines.flatMap((l) => l.tokens).filter((t) => t.scopes.some((s) => s.startsWith("invalid")));
  return invalid.length >= 2 ? [] : ["an unterminated string and a stray `@` are not scoped invalid"];
}

async function main() {
  const grammar = await loadGrammar();
  const files = fs.readdirSync(EXAMPLES).filter((f) => f.endsWith(".dml")).sort().map((f) => path.join(EXAMPLES, f));
  files.push(FIXTURE);
  let passed = 0;
  let failed = 0;
  const report = (name, found) => {
    if (found.length) {
      failed += 1;
      console.log(`FAIL ${name}\n  ${found.join("\n  ")}`);
    } else {
      passed += 1;
      console.log(`ok   ${name}`);
    }
  };
  for (const file of files) {
    const name = path.basename(file);
    const lines = tokenize(grammar, fs.readFileSync(file, "utf8"));
    report(name, [...problems(name, lines), ...checkSnapshot(name, lines)]);
    if (file === FIXTURE) report("every token class is scoped", classProblems(lines));
  }
  report("broken input is scoped invalid", brokenInput(grammar));
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 2;
});
