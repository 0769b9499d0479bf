"""Tools, one module per domain: each tool is an input model, an output model, annotations and a handler."""
