PYTHON ?= python

.PHONY: bench
bench:
	$(PYTHON) -m bench
