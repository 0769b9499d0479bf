"""sheepcrm-mcp: an MCP server for the sheepCRM membership CRM.

The package is layered; each layer imports only the ones below it (checked by import-linter):

  sheepcrm_mcp           the entry: CLI, app assembly, HTTP transport, doctor, demo (the modules in this folder)
  sheepcrm_mcp.tools     the tool catalogue: tools, resources, prompts, instructions
  sheepcrm_mcp.server    the MCP machinery, domain-free: tool specs, gate, approvals, audit, logs, settings
  sheepcrm_mcp.sheepcrm  the sheepCRM API client, knowing nothing of MCP

`sheepcrm_mcp.sandbox` is the embedded fake sheepCRM; it imports none of the above.

Layout: the subpackages live at the repository's top level (`tools/`, `server/`, `sheepcrm/`, `sandbox/`) and
this folder holds a committed relative symlink to each (`sheepcrm_mcp/tools -> ../tools`, ...). Those symlinks
are the one folder-to-package map. Everything follows them without help: setuptools' package finder (the
wheel and sdist hold real files), the editable install (which maps the one name, sheepcrm_mcp, to this folder),
and, run from the repository root, mypy, import-linter and editors. `tests/conftest.py` fails the run when the
package it imports, or the one installed, is not this checkout.
"""

from sheepcrm_mcp.server import __version__

__all__ = ["__version__"]
