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

.PHONY: book pages book-en zh-pages test test-fast env grader lint format lock exercises benchmark clean \
        fonts sphinx-conf book-zh translations hub hub-proxy

env: $(STAMP)

# The instructor's set-up: the environment, and what boxes student code when grading
# (bubblewrap; scripts/system-deps.sh says what to run where it cannot install it).
grader: $(STAMP)
	bash scripts/system-deps.sh --grading

# torch (the version the lock pins) from PyTorch's CPU index, so no platform gets a CUDA
# build; alone and first, so that pip asks that index for torch only.
TORCH_INDEX := https://download.pytorch.org/whl/cpu

# pip compiles the installed modules to bytecode in one process; compile_dir does the same on
# every core (16 s of the install's 37 s on 2 cores). Like pip, it skips a file that does
# not compile (some packages ship such files as test data): its result is not an error.
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile

# The rest of the lock (about 200 packages) goes in with uv, pinned in the lock: it fetches and
# unpacks them in parallel (measured on 2 cores: 5 to 7 s, against pip's 39 s). torch stays with
# pip, which also reads the machine's pip configuration (a mirror, a folder of wheels) for it;
# uv reads its own (UV_DEFAULT_INDEX, UV_FIND_LINKS: README, "Set-up"). --system-certs: like pip,
# uv trusts the system's certificate store (which holds a company proxy's CA, say), not only its own.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --no-deps --index-url $(TORCH_INDEX) "$$(grep '^torch==' requirements.lock)"
	$(PIP) "$$(grep '^uv==' requirements.lock)"
	$(BIN)/uv pip install --quiet --system-certs --python $(BIN)/python -r requirements.lock
	$(PIP) --no-deps --no-build-isolation -e .
	$(BIN)/python -c 'import compileall, sys; compileall.compile_dir(sys.argv[1], quiet=2, workers=0)' $(VENV)/lib
	touch $@

# The chapters execute in parallel first (one per core, into _build/.jupyter_cache), so the
# builds find them all cached and execute nothing; then the two editions are built side by
# side (each Sphinx build uses one core; they read the same cache and write apart).
book: $(STAMP) fonts
	$(BIN)/python scripts/execute_book.py
	$(MAKE) --no-print-directory pages
	@echo
	@echo "The book is built. Open: file://$(CURDIR)/_build/html/index.html"
	@echo "Chinese edition:       file://$(CURDIR)/_build/html/zh/index.html"

pages: $(STAMP) sphinx-conf
	$(MAKE) --no-print-directory -j 2 --output-sync=target book-en zh-pages

# --- The Chinese edition (README: "The Chinese edition") --------------------------
# Same sources, same execution cache: run after the chapters executed, it executes
# nothing (_ext/course_i18n.py fails the build if it had to). jupyter-book's CLI
# passes no -D to Sphinx (jupyter-book #1791), so these run sphinx-build on the
# conf that scripts/sphinx-conf.sh generates from _config.yml.
SPHINX_CONF := _build/sphinx
LANGUAGES   := zh_CN

fonts:
	bash scripts/system-deps.sh --fonts

sphinx-conf: $(STAMP)
	bash scripts/sphinx-conf.sh

book-en: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going

book-zh: $(STAMP) fonts sphinx-conf
	$(MAKE) --no-print-directory zh-pages

zh-pages:
	$(BIN)/sphinx-build -b html -c $(SPHINX_CONF) -d _build/.doctrees-zh_CN \
	    -D language=zh_CN -W -n --keep-going -q . _build/html/zh

# Update locales/<lang>/ from the English source: new and changed messages come in
# untranslated (or fuzzy), removed ones go. Translate them, then `make book`. The
# assignments' catalogs (exercises/*.po, checks.po) come from solutions/ and the package:
# translate them, then `make exercises`.
translations: $(STAMP) sphinx-conf
	rm -rf _build/gettext
	$(BIN)/sphinx-build -b gettext -c $(SPHINX_CONF) -d _build/.doctrees-gettext \
	    -W -n --keep-going -q . _build/gettext
	$(BIN)/sphinx-intl update -p _build/gettext -d locales $(addprefix -l ,$(LANGUAGES))
	$(BIN)/python scripts/notebook_catalogs.py update

# Extra pytest arguments, e.g. make test PYTEST_ARGS="-k 03_query"
# --dist loadfile: each test file runs on one worker, so a file's session fixtures (a class
# graded once, checked by many tests) are built once. (`--dist loadgroup` with xdist 3.8 and
# pytest 9 does not keep an xdist_group together; measured, it split every group.)
PYTEST_ARGS ?=

test: $(STAMP)
	bash scripts/system-deps.sh
	$(MAKE) --no-print-directory hub-proxy
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=15 $(PYTEST_ARGS)

# The library loop: no book build, no kernels, no servers (tiers in CONTRIBUTING.md).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not book and not nbgrader and not grading and not install" --durations=5 $(PYTEST_ARGS)

# --- The class hub (README: "A class on JupyterHub") ------------------------------
# JupyterHub (the grading extra) with its proxy from npm, pinned in scripts/hub/package-lock.json
# and installed into scripts/hub/node_modules. `make hub` creates unix users: run it as root.
PROXY := scripts/hub/node_modules/.bin/configurable-http-proxy

hub-proxy: $(PROXY)

$(PROXY): scripts/hub/package.json scripts/hub/package-lock.json
	bash scripts/system-deps.sh --hub
	cd scripts/hub && npm ci --no-audit --no-fund --loglevel=error
	touch $@

hub: $(STAMP) grader hub-proxy
	$(BIN)/python scripts/hub/class_hub.py $(HUB_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

# Regenerate the student notebooks from the instructor ones, and their translations from the
# catalogs (compiled into the package first).
exercises: $(STAMP)
	$(BIN)/python scripts/make_exercises.py

benchmark: $(STAMP)
	$(BIN)/python benchmarks/attention_speed.py

# --all: pip freeze leaves out setuptools and wheel otherwise, and the lock pins them too (the
# editable install builds with the venv's setuptools; a pinned package requires wheel).
lock: $(STAMP)
	{ grep '^#' requirements.lock; $(BIN)/python -m pip freeze --all --exclude-editable \
	    | grep -v '^pip==' | sed 's/+cpu//'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf _build
