"""sheepCRM-compatible API for demos, tests and benchmarks: SQLite store, seed data, faults."""

from sandbox.app import create_app
from sandbox.faults import FaultPlan
from sandbox.runner import SandboxServer
from sandbox.store import Store

__all__ = ["FaultPlan", "SandboxServer", "Store", "create_app"]
