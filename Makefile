# jaxmob: every target installs first, so a fresh clone needs only `make train` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ENV    ?= rebalance
ALG    ?=
SCENARIO ?=
ARGS   ?=

.PHONY: install test train bench scenarios show clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

train: install
	$(BIN)/python -m jaxmob train --env $(ENV) $(if $(ALG),--alg $(ALG),) $(if $(SCENARIO),--scenario $(SCENARIO),) $(ARGS)

bench: install
	$(BIN)/python benchmarks/bench_env.py $(ARGS)
	$(BIN)/python benchmarks/bench_taxi.py
	$(BIN)/python benchmarks/bench_amod.py
	$(BIN)/python benchmarks/bench_routing.py
	$(BIN)/python benchmarks/bench_parking.py
	$(BIN)/python benchmarks/bench_parking_training.py
	$(BIN)/python benchmarks/bench_adapters.py

scenarios: install
	$(BIN)/python -m jaxmob scenarios rebalance --out jaxmob/envs/rebalance/scenarios $(ARGS)
	$(BIN)/python -m jaxmob scenarios taxi --out jaxmob/envs/taxi/scenarios
	$(BIN)/python -m jaxmob scenarios amod --out jaxmob/envs/amod/scenarios
	$(BIN)/python -m jaxmob scenarios routing --out jaxmob/envs/routing/scenarios
	$(BIN)/python -m jaxmob scenarios parking --out jaxmob/envs/parking/scenarios

show: install
	$(BIN)/python -m jaxmob show $(or $(SCENARIO),manhattan-106) --env $(ENV)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
