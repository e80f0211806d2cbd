# From diffusion to flow matching, interactively.
#   make lab    set up .venv if needed and open the course in JupyterLab
#   make test   set up .venv if needed and run every test (fast budget)
# Other targets: lab-settings PREFIX=env, lint, format, claims, app, book, handout, lesson N=01, checkpoints, benchmarks, bench-quick, bench-peers, sync, clean.

VENV       ?= .venv
PY         := $(VENV)/bin/python
PIP        := $(PY) -m pip
# Which torch to install when the venv has none. CPU-only machines and CI pin a CPU wheel.
TORCH_SPEC ?= torch
CELL_TIMEOUT ?= 600
TEST_TIMEOUT ?= 2400
STAMP      := $(VENV)/.course-installed
PEER_LIBS      := torchcfm==1.0.7 flow-matching==1.0.10 torchdyn==1.0.6
REFERENCE_LIBS := diffusers==0.42.1 $(PEER_LIBS)
# checked exercises: the tests run each unfilled one with its shipped solution; a handout (no solutions/) as a learner would
EXERCISES_MODE := $(if $(wildcard solutions/*.py),solutions,learner)

.PHONY: setup lab-settings lab test lint format claims test-lib test-notebooks app book handout lesson lesson-name checkpoints benchmarks bench-quick bench-peers wheel sync clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/jupyterlab_overrides.json scripts/jupyter_server_config.json
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[dev]"
	@# reference libraries for tests/test_references.py, with --no-deps so none can pull another torch
	$(PIP) install --no-deps $(REFERENCE_LIBS)
	$(PIP) install huggingface_hub safetensors regex importlib_metadata
	$(MAKE) lab-settings PREFIX=$(VENV)
	@touch $@

# Lab's shipped settings in the environment at PREFIX: .py lessons open as notebooks; no news pop-up, no request
# for news or updates; and the server's: lessons open unmodified (lessons/lab_contents.py fills in on reading
# what Lab would otherwise add on opening)
PREFIX ?= $(VENV)
lab-settings:
	@test -n "$(PREFIX)" || { echo 'make lab-settings: PREFIX is empty; give the environment, e.g. PREFIX="$$CONDA_PREFIX"'; exit 2; }
	@mkdir -p $(PREFIX)/share/jupyter/lab/settings $(PREFIX)/etc/jupyter
	cp scripts/jupyterlab_overrides.json $(PREFIX)/share/jupyter/lab/settings/overrides.json
	cp scripts/jupyter_server_config.json $(PREFIX)/etc/jupyter/jupyter_server_config.json

lab: setup
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

# The notebooks write the claims ledger (build/claims/) as they run; the ledger check then fails if a
# claim of a lesson has no proof or no rejected control.
test: setup lint
	rm -rf build/claims
	COURSE_BUDGET=fast COURSE_EXERCISES=$(EXERCISES_MODE) timeout $(TEST_TIMEOUT) $(PY) -m pytest tests \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=$(CELL_TIMEOUT) \
		--timeout=$(CELL_TIMEOUT) --durations=30 notebooks/
	$(PY) scripts/claims_ledger.py --check

# The claims ledger from the last notebook run, written into the README.
claims: setup
	$(PY) scripts/claims_ledger.py --check --readme

# ruff: lint and formatting (configured in pyproject.toml); `make format` applies both fixes.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test-lib: setup
	COURSE_BUDGET=fast $(PY) -m pytest tests

test-notebooks: setup
	COURSE_BUDGET=fast COURSE_EXERCISES=$(EXERCISES_MODE) timeout $(TEST_TIMEOUT) $(PY) -m pytest \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=$(CELL_TIMEOUT) notebooks/

# Run one lesson headless, e.g. `make lesson N=01` or N=02b (COURSE_BUDGET=full by default); without a
# lesson's N it lists the lessons.
lesson: lesson-name setup
	$(VENV)/bin/jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=-1 \
		--output-dir build/executed notebooks/$(N)_*.ipynb

lesson-name:
	@if [ -z "$(N)" ] || ! ls notebooks/$(N)_*.ipynb >/dev/null 2>&1; then \
		echo "make lesson N=NN runs one lesson$(if $(N), (there is no lesson N=$(N))); the lessons are:"; \
		for f in notebooks/[0-9]*_*.ipynb; do b=$${f#notebooks/}; echo "  N=$${b%%_*}	$${b%.ipynb}"; done; \
		exit 2; \
	fi

# The course without the exercises' solutions, for handing out to learners, in build/handout.
handout: setup
	rm -rf build/handout
	$(PY) scripts/make_handout.py build/handout

# The lecture app (Voila), bound to this machine only; the course's page template (share/jupyter/voila/templates/course)
# is Voila's own without its CDN links, so nothing is fetched from the network.
app: setup
	JUPYTER_PATH=share/jupyter $(VENV)/bin/voila notebooks/app.ipynb --template=course --Voila.ip=127.0.0.1 --port=8866

# The course book (Sphinx, myst-nb and sphinx-book-theme; configured in book/): every lesson runs in a fresh
# kernel with BOOK_BUDGET (full, as learners get it; BOOK_BUDGET=fast trains as CI does), then Sphinx writes
# _book/. Open _book/index.html: nothing in it loads from the network. A lesson that fails fails the target.
BOOK_BUDGET ?= full
book: setup
	$(PY) scripts/build_book.py --budget $(BOOK_BUDGET) --out _book

# Retrain the shipped checkpoints with the project's own scripts.
checkpoints: setup
	$(PY) scripts/train_2d_checkpoints.py
	$(PY) scripts/train_mnist_classifier.py --steps 600 --out checkpoints/mnist/classifier.pt
	$(PY) scripts/train_mnist.py --method cfm --classes --steps 6000 --batch-size 64 --size small --device cpu --out checkpoints/mnist/cfm_small.pt
	$(PY) scripts/train_mnist.py --method ddpm --classes --steps 6000 --batch-size 64 --size small --device cpu --out checkpoints/mnist/ddpm_small.pt
	$(PY) scripts/train_mnist.py --method cfm --classes --prediction eps --steps 6000 --batch-size 64 --size small --device cpu --out checkpoints/mnist/eps_flow_small.pt
	$(PY) scripts/train_mnist.py --method cfm --classes --coupling ot --steps 6000 --batch-size 64 --size small --device cpu --out checkpoints/mnist/otcfm_small.pt
	$(PY) scripts/train_mnist.py --method cfm --classes --coupling reflow --init checkpoints/mnist/cfm_small.pt --reflow-pairs 8000 --steps 3000 --lr 1e-3 --batch-size 64 --size small --device cpu --out checkpoints/mnist/reflow_small.pt --control-out checkpoints/mnist/reflow_shuffled_small.pt
	$(PY) scripts/train_latent.py --models autoencoder unet dit

benchmarks: setup
	$(PY) benchmarks/flows_2d.py
	$(PY) benchmarks/widget_latency.py
	$(PY) benchmarks/mnist.py

# The course's recipe beside TorchCFM's and Meta flow_matching's (peers with --no-deps: never another torch).
bench-peers: setup
	$(PIP) install --no-deps $(PEER_LIBS)
	$(PY) benchmarks/vs_peers.py

bench-quick: setup
	$(PY) benchmarks/flows_2d.py --quick

# The course as a wheel (library, widgets, shipped checkpoints and notebooks) in dist/; after
# `pip install dist/*.whl`, `course-notebooks DEST` copies the lessons into a folder.
wheel: setup
	$(PIP) wheel . --no-deps --no-build-isolation -w dist

# Regenerate every .ipynb from its reviewed .py source (no outputs), keeping cell ids; every lesson first
# gets the setup cell of scripts/setup_cell.py (the one place that says where Colab installs the course from).
sync:
	$(VENV)/bin/python scripts/setup_cell.py
	$(VENV)/bin/jupytext --update --to ipynb notebooks/*.py

clean:
	rm -rf build _book dist .pytest_cache
