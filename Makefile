# The two commands a newcomer needs: `make demo` and `make test`.
# Both create .venv on first use and install everything into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup test demo lessons bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and pinned, so that no extra lets pip pick another (CUDA) build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[all]'
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	MPLBACKEND=Agg $(PY) -m pytest

demo: $(STAMP)
	MPLBACKEND=Agg $(PY) -m tinytransformer demo

lessons: $(STAMP)
	for f in lessons/[0-9]*.py; do echo "== $$f"; MPLBACKEND=Agg $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis lessons/figures
