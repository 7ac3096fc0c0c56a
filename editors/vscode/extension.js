// The dmlc extension: starts `dmlc lsp` (the language server of .dml files and the YAML form) and
// connects it to the editor. Plain JavaScript, so the folder runs as it is: no build step.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function serverOptions(config) {
  const [command, ...args] = config.get("server.command", ["dmlc", "lsp"]);
  return { command, args, options: { env: process.env } };
}

function documentSelector(config) {
  const yaml = config.get("yamlFiles", []).map((pattern) => ({ language: "yaml", pattern }));
  return [{ language: "dml" }, ...yaml];
}

async function start(context) {
  const config = vscode.workspace.getConfiguration("dmlc");
  const server = serverOptions(config);
  client = new LanguageClient("dmlc", "dmlc language server", server, {
    documentSelector: documentSelector(config),
    outputChannelName: "dmlc",
  });
  try {
    await client.start();
  } catch (err) {
    const shown = [server.command, ...server.args].join(" ");
    vscode.window.showErrorMessage(
      `dmlc: could not start \`${shown}\` (${err.message}). Install dmlc (pip install dmlc) or set "dmlc.server.command".`
    );
  }
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand("dmlc.restartServer", async () => {
      if (client) {
        await client.stop();
      }
      await start(context);
    }),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration("dmlc") && client) {
        await client.stop();
        await start(context);
      }
    })
  );
  await start(context);
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
