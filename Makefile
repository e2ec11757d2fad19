# The two commands a newcomer needs: `make demo` and `make test`.
# Both create .venv on first use and install everything into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup test demo lessons book index bench clean

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
	# the library's other two paths: every Numba kernel run as plain Python (JIT off) against its NumPy
	# twin, and the whole suite but the lessons on the NumPy backend (what a machine without Numba runs)
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -p no:cacheprovider tests/kernels
	TINYTRANSFORMER_BACKEND=numpy MPLBACKEND=Agg $(PY) -m pytest -p no:cacheprovider --ignore=tests/test_lessons.py --ignore=tests/test_book.py

# a GPT trained on Python's help pages for a few minutes (checkpoint and loss.png in runs/demo), then a sample
demo: $(STAMP)
	MPLBACKEND=Agg $(PY) -m tinytransformer train --data pydoc --out runs/demo --overwrite
	$(PY) -m tinytransformer generate --checkpoint runs/demo --prompt "The " --max-new-tokens 400

# tinytransformer (NumPy, Numba) against PyTorch on this machine (about 30 minutes; nothing else should run):
# a training step on 1 thread and on 2 (with its matrix products alone: the floor), 2 MPI ranks against
# PyTorch DDP, generation with the KV cache, whole `train` runs against a PyTorch twin trainer, a run beside
# a busy process, and each kernel. JSON, RESULTS.md (issue 15's targets first), train.png and targets.png
# in benchmarks/results/. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for these commands only (the
# results' header names the BLAS kernel that ran); when they are set here, the training step is measured
# with them as set too.
BENCH_ENV := env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
	TT_BENCH_CALLER_ENV="OPENBLAS_CORETYPE=$${OPENBLAS_CORETYPE-unset} OPENBLAS_L2_SIZE=$${OPENBLAS_L2_SIZE-unset}"
bench: $(STAMP)
	@uptime
	if [ -n "$${OPENBLAS_CORETYPE}$${OPENBLAS_L2_SIZE}" ]; then \
		$(PY) benchmarks/bench_train.py --skip generation memory startup allocator \
			--out benchmarks/results/train_openblas_env_as_set.json; fi
	$(BENCH_ENV) $(PY) benchmarks/bench_train.py --threads 1 --out benchmarks/results/train.json
	$(BENCH_ENV) $(PY) benchmarks/bench_train.py --threads 2 --skip generation memory startup allocator \
		--out benchmarks/results/train_2threads.json
	$(BENCH_ENV) $(PY) benchmarks/bench_parallel.py
	$(BENCH_ENV) $(PY) benchmarks/bench_generate.py --rounds 5
	$(BENCH_ENV) $(PY) benchmarks/bench_runs.py --repeats 2 --ours-nproc 2
	$(BENCH_ENV) $(PY) benchmarks/bench_neighbour.py
	$(BENCH_ENV) $(PY) benchmarks/bench_kernels.py --threads 1 --clock cpu
	MPLBACKEND=Agg $(PY) benchmarks/report.py
	@uptime

lessons: $(STAMP)
	for f in $$(ls lessons/[0-9]*.py | LC_ALL=C sort); do echo "== $$f"; MPLBACKEND=Agg $(PY) $$f || exit 1; done

# the course as a web site: every lesson executed as a notebook, then build/book/index.html and a page per lesson
# (math as MathML: opens offline). Full length by default (about as long as `make lessons`); TINYTRANSFORMER_SHORT=1
# for the short mode CI runs. Each lesson's time goes to build/book/times.json; `make index` then records it in
# lessons/times.json and rewrites the table in lessons/README.md.
book: $(STAMP)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MPLBACKEND=Agg $(PY) tools/book.py --out build/book

index: $(STAMP)
	$(PY) tools/course_index.py --record build/book/times.json

# scaling laws in miniature: 12 character-level GPTs on Python's help pages, about 15 minutes on 2 cores;
# writes benchmarks/results/scaling.json and scaling.png (validation loss against N, D and C, power-law fits)
.PHONY: scaling
scaling: $(STAMP)
	MPLBACKEND=Agg $(PY) benchmarks/scaling.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis lessons/figures build/book
