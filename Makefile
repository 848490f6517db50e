# The two set-up commands of the README:
#   make book   create .venv, install the lock, build the book (every chapter executed)
#   make test   the same environment, then the whole test suite
# Neither needs an activated virtualenv: the venv's bin/ is put first on PATH
# here, so the book build's Jupyter finds the venv's kernel (the grader sets its own
# PATH in attn_course.grading.put_bin_on_path; this export is for jupyter-book).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export PYTHONDONTWRITEBYTECODE := 1
STAMP  := $(VENV)/.installed

.PHONY: book test test-fast env lint format lock exercises benchmark clean

env: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# The chapters execute in parallel first (one per core, into _build/.jupyter_cache), so the
# build itself finds them all cached and executes nothing.
book: $(STAMP)
	$(BIN)/python scripts/execute_book.py
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo
	@echo "The book is built. Open: file://$(CURDIR)/_build/html/index.html"

# Extra pytest arguments, e.g. make test PYTEST_ARGS="-k 03_query"
PYTEST_ARGS ?=

test: $(STAMP)
	bash scripts/system-deps.sh
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=15 $(PYTEST_ARGS)

# The library loop: no book build, no kernels, no servers (tiers in CONTRIBUTING.md).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not book and not nbgrader and not grading" --durations=5 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

# Regenerate the student notebooks from the instructor ones.
exercises: $(STAMP)
	$(BIN)/python -m attn_course.grading.release

benchmark: $(STAMP)
	$(BIN)/python benchmarks/attention_speed.py

lock: $(STAMP)
	{ head -2 requirements.lock; $(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu//'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf _build
