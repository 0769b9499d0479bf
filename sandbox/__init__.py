"""sheepCRM-compatible API for demos, tests and benchmarks: SQLite store, seed data, faults."""

from sheepcrm_mcp.sandbox.app import create_app
from sheepcrm_mcp.sandbox.faults import FaultPlan
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.sandbox.store import Store

__all__ = ["FaultPlan", "SandboxServer", "Store", "create_app"]
