// extension.js without VS Code: `vscode` and the language client are stand-ins that record what the
// extension asks for. Checks that activation starts `dmlc lsp` for .dml files and the YAML patterns,
// honours the dmlc.server.command setting and registers the restart command.
// Usage: node test/extension.test.js
"use strict";

const Module = require("module");
const assert = require("assert");

const started = [];
const commands = {};
const settings = { "server.command": ["dmlc", "lsp"], yamlFiles: ["**/*.dml.yaml"] };

class LanguageClient {
  constructor(id, name, server, client) {
    Object.assign(this, { id, name, server, client });
  }
  async start() {
    started.push(this);
  }
  async stop() {}
}

const vscode = {
  workspace: {
    getConfiguration: () => ({ get: (key, fallback) => (key in settings ? settings[key] : fallback) }),
    onDidChangeConfiguration: () => ({ dispose() {} }),
  },
  commands: {
    registerCommand: (name, fn) => {
      commands[name] = fn;
      return { dispose() {} };
    },
  },
  window: { showErrorMessage: (m) => assert.fail(m) },
};

const load = Module._load;
Module._load = function (request, ...rest) {
  if (request === "vscode") return vscode;
  if (request === "vscode-languageclient/node") return { LanguageClient };
  return load.call(this, request, ...rest);
};

async function main() {
  const extension = require("../extension.js");
  const context = { subscriptions: [] };
  await extension.activate(context);
  const [client] = started;
  assert.strictEqual(client.server.command, "dmlc");
  assert.deepStrictEqual(client.server.args, ["lsp"]);
  assert.deepStrictEqual(client.client.documentSelector, [
    { language: "dml" },
    { language: "yaml", pattern: "**/*.dml.yaml" },
  ]);
  assert.ok(commands["dmlc.restartServer"], "the restart command is registered");
  settings["server.command"] = ["/venv/bin/python", "-m", "dmlc.cli", "lsp"];
  await commands["dmlc.restartServer"]();
  assert.strictEqual(started[1].server.command, "/venv/bin/python");
  assert.deepStrictEqual(started[1].server.args, ["-m", "dmlc.cli", "lsp"]);
  await extension.deactivate();
  console.log("ok   extension activation\n1 passed, 0 failed");
}

main().catch((err) => {
  console.error(err);
  console.log("0 passed, 1 failed");
  process.exitCode = 1;
});
