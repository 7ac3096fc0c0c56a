"""The language server of `.dml` files and the YAML form (`dmlc lsp`, DESIGN §7.5-7.6).

server      pygls wiring: the LSP features, over stdio
analysis    a buffer checked as `dmlc check` checks a file (through the driver), kept per buffer
convert     dmlc spans and results <-> LSP positions and types
context     where the cursor is in a .dml text that may not parse (completion, hover while typing)
yaml_context  the same for the YAML form, from indentation
fields      what the IR models say of each attribute: description, type, default, enum values, units
completion  completion items for a cursor context
hover       hover text for the attribute, step kind or step under the cursor
navigate    step definitions and references in a parsed Document: definition, references, rename, symbols
formatting  `dmlc fmt` on a buffer, through dmlc.fmt's public functions
"""
