"""Benchmarks for sheepcrm-mcp: `python -m bench [--quick] [--no-write]` prints side-by-side ratios."""
