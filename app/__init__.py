"""sheepcrm-mcp: an MCP server for the sheepCRM membership CRM.

The package is layered; each layer imports only the ones below it (checked by import-linter):

  sheepcrm_mcp (this folder, app/)  the entry: CLI, app assembly, HTTP transport, doctor, demo
  sheepcrm_mcp.tools    (tools/)    the tool catalogue: tools, resources, prompts, instructions
  sheepcrm_mcp.server   (server/)   the MCP machinery, domain-free: toolkit, gate, approvals, audit, logs, settings
  sheepcrm_mcp.sheepcrm (sheepcrm/) the sheepCRM API client, knowing nothing of MCP

`sheepcrm_mcp.sandbox` (sandbox/) is the embedded fake sheepCRM; it imports none of the above.
"""
