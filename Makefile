# `make test` is the test command (CI runs exactly it, through .ci/run).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch and torchvision are installed first and on their own. These releases lie on the
# development machines' disk (pip takes them offline); elsewhere any recent pair works, e.g.
#   make test TORCH="torch torchvision"
TORCH  ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install test test-fast lint chromium bench book clean

# On Linux, torch 2.14.1's wheel is a CUDA build: the venv grows to 6.1 GB (measured). Before a first
# install, stop at once, creating nothing, when the disk holding the venv has less than MIN_FREE_GB.
MIN_FREE_GB ?= 7
$(BIN)/.installed: pyproject.toml
	@$(BIN)/python -c 'import torch' 2> /dev/null || { \
	  at=$$(dirname "$(abspath $(VENV))"); free=$$(df -Pk "$$at" | awk 'NR == 2 {print int($$4 / 1048576)}'); \
	  test "$$free" -ge $(MIN_FREE_GB) || { \
	    echo "make: $$free GB free on the disk of $$at, and installing torch there (6.1 GB with its CUDA" \
	         "libraries) needs $(MIN_FREE_GB) GB. Free some space, or put the venv on a larger disk" \
	         "(make test VENV=/big/disk/venv), or take a CPU-only torch and a lower bar:" \
	         "make test MIN_FREE_GB=2 TORCH='torch torchvision --index-url https://download.pytorch.org/whl/cpu'"; \
	    exit 1; }; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

lint: install
	$(BIN)/ruff check sigmavae tests bench notebooks/py book

# The book's page test drives Debian's chromium, headless: installed here when it is missing and
# this user may (root, or sudo without a password); otherwise one line says what to run.
chromium:
	@command -v chromium > /dev/null || command -v chromium-browser > /dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2> /dev/null; then SUDO=sudo; else \
	    echo "make test: the book's page test needs Debian's chromium: run 'sudo apt-get install chromium'" \
	         "(or 'make test-fast', which skips the slow tests)"; exit 1; fi; \
	  echo "make test: installing Debian's chromium for the book's page test"; \
	  $$SUDO apt-get update -q > /dev/null && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium > /dev/null; }

# Every test (under 15 minutes on 2 cores); `make test-fast` leaves out those marked slow
# (notebooks, the book, the Colab venv, DDP, the download through a notebook).
test: lint chromium
	$(BIN)/pytest -q

test-fast: lint
	$(BIN)/pytest -q -m "not slow"

bench: install
	$(BIN)/python bench/train_speed.py

# The HTML book from the committed, executed notebooks (nothing is executed): _build/html.
# REPO_URL (a GitHub repository; default: git's origin) adds Colab launch buttons to notebook pages.
REPO_URL ?= $(shell git config --get remote.origin.url 2>/dev/null)
book: install
	$(BIN)/python -m pip install -q -e '.[book]'
	$(BIN)/python book/pages.py > /dev/null  # stops when _toc.yml or a generated page is out of date
	rm -rf _build && mkdir -p _build
	$(BIN)/python book/configure.py "$(REPO_URL)" > _build/_config.yml
	test -z "$(REPO_URL)" || $(BIN)/python book/configure.py --notebooks "$(REPO_URL)"
	$(BIN)/jupyter-book build . --config _build/_config.yml -W -n --keep-going

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info _build
