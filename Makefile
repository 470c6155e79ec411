# The payment platform's infrastructure: build, check, test and deploy.
# `make` alone prints this help. ENV is dev, staging or prod (plain `make build` builds all three),
# or local (the emulator's environment: `make emulator`, `make e2e`).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_BOOTSTRAP ?= python3
VENV := .venv
TOOLS_VENV := .venv-tools
PY := $(VENV)/bin/python
ENV ?=
ENV_FLAG := $(if $(ENV),--env $(ENV),)
TEMPLATES = $(filter-out %/manifest.json %/plan.json %/review.json,$(wildcard build/*/*.json))

.PHONY: help venv tools build lint workflow-lint test test-fast e2e emulator benchmark golden functions-readme clean \
        delivery-role preflight bootstrap plan deploy execute destroy recover adopt status outputs require-env require-stack \
        merchants merchant-create merchant-key-issue merchant-key-revoke merchant-suspend merchant-reactivate require-merchant

help: ## show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'
	@echo "  ENV=dev|staging|prod|local   YES=1 (no prompt)   FORCE=1 (destroy prod)   DRIFT=1 (status)"
	@echo "  FIX=1 (preflight creates missing service-linked roles)   STACK=<name or layer> (recover, adopt)"
	@echo "  NO_ROLLBACK_TRIGGERS=1 (deploy/execute: a hotfix during an incident)"
	@echo "  ROLE=github-plan|github-deploy OUTPUT=<file> (delivery-role: what a GitHub workflow assumes)"
	@echo "  merchants: NAME=, MERCHANT=mer_..., KEY=key_..., DAYS= (key expiry, optional)"

$(VENV)/.installed: requirements.txt
	$(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(TOOLS_VENV)/.installed: requirements-tools.txt
	$(PYTHON_BOOTSTRAP) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-tools.txt
	touch $@

venv: $(VENV)/.installed ## create the pinned project environment (.venv)
tools: $(TOOLS_VENV)/.installed ## create the pinned checkov environment (.venv-tools)

build: venv ## templates, function zips, manifest + static checks + cfn-lint (ENV= optional)
	$(PY) build.py $(ENV_FLAG)

lint: build tools ## cfn-lint (SARIF) and checkov over every built template
	-$(VENV)/bin/cfn-lint -c I --format sarif -- $(TEMPLATES) > build/cfn-lint.sarif
	$(VENV)/bin/cfn-lint -c I -- $(TEMPLATES)
	BC_SKIP_MAPPING=TRUE $(TOOLS_VENV)/bin/checkov --skip-download --quiet --compact --framework cloudformation \
	    $(foreach t,$(TEMPLATES),-f $(t)) --output cli --output sarif --output-file-path console,build/checkov.sarif

workflow-lint: tools ## actionlint (pinned, in .venv-tools) over .github/workflows
	$(TOOLS_VENV)/bin/actionlint -no-color

test: venv tools ## the whole test suite (offline: moto and fakes, no AWS account)
	$(PY) -m pytest -n 2

e2e: venv ## the real `local` build deployed, changed and destroyed in a fresh local emulator
	$(PY) -m emulator.e2e

emulator: venv ## start the local AWS emulator on 127.0.0.1 (prints its endpoint; Ctrl-C stops it)
	$(PY) -m emulator $(if $(PORT),--port $(PORT),)

benchmark: venv ## build, batch ingestion, Distributed Map model and deploy scheduling benchmarks
	$(PY) benchmarks/build_time.py
	$(PY) benchmarks/batch_ingestion.py --rows 2000 --naive-rows 500  # ~1 min: moto's index scans grow with the table
	$(PY) benchmarks/batch_map.py
	$(PY) benchmarks/deploy_schedule.py

golden: venv ## rewrite the golden templates after a reviewed template change
	UPDATE_GOLDEN=1 $(PY) -m pytest tests/test_golden.py -q

functions-readme: venv ## regenerate functions/README.md from the function declarations
	$(PY) -c "from templates_src.function_catalog import load_functions, render_functions_readme; open('functions/README.md','w').write(render_functions_readme(load_functions()))"

require-env:
	@test -n "$(ENV)" || { echo "ENV is required: make $(MAKECMDGOALS) ENV=dev|staging|prod" >&2; exit 2; }

require-stack:
	@test -n "$(STACK)" || { echo "STACK is required: make $(MAKECMDGOALS) ENV=$(ENV) STACK=<name or layer>" >&2; exit 2; }

TRIGGERS_FLAG = $(if $(NO_ROLLBACK_TRIGGERS),--no-rollback-triggers,)

delivery-role: require-env venv ## the GitHub role's ARN and region for a workflow (ROLE=github-plan|github-deploy, OUTPUT=file)
	@test -n "$(ROLE)" || { echo "ROLE is required: make delivery-role ENV=$(ENV) ROLE=github-plan|github-deploy" >&2; exit 2; }
	$(PY) -m templates_src.delivery --env $(ENV) --role $(ROLE) $(if $(OUTPUT),--output "$(OUTPUT)",)

preflight: require-env build ## read-only account checks (FIX=1 creates missing service-linked roles)
	$(PY) deploy.py preflight --env $(ENV) $(if $(FIX),--fix,)

bootstrap: require-env build ## deploy only the artifacts stack (bucket + image repository), to push the image
	$(PY) deploy.py bootstrap --env $(ENV) $(if $(YES),--yes,)

plan: require-env build ## preflight, upload artifacts, create change sets, print the review (executes nothing)
	$(PY) deploy.py plan --env $(ENV) $(TRIGGERS_FLAG)

deploy: require-env build ## preflight, plan, confirm (YES=1 for CI), execute in dependency order
	$(PY) deploy.py deploy --env $(ENV) $(if $(YES),--yes,) $(TRIGGERS_FLAG)

execute: require-env venv ## execute the change sets of the last plan after console review
	$(PY) deploy.py execute --env $(ENV) $(TRIGGERS_FLAG)

destroy: require-env venv ## delete the stacks in reverse order (prod needs FORCE=1)
	$(PY) deploy.py destroy --env $(ENV) $(if $(FORCE),--force,) $(if $(YES),--yes,)

recover: require-env require-stack venv ## the way out of ROLLBACK_FAILED, DELETE_FAILED, UPDATE_ROLLBACK_FAILED
	$(PY) deploy.py recover --env $(ENV) --stack $(STACK) $(if $(YES),--yes,) $(if $(FORCE_DELETE),--force-delete,)

adopt: require-env require-stack venv ## create a stack from the resources an earlier deployment kept (IMPORT)
	$(PY) deploy.py adopt --env $(ENV) --stack $(STACK) $(if $(YES),--yes,)

status: require-env venv ## stack states (DRIFT=1 adds drift detection)
	$(PY) deploy.py status --env $(ENV) $(if $(DRIFT),--drift,)

outputs: require-env venv ## stack outputs
	$(PY) deploy.py outputs --env $(ENV)

require-merchant:
	@test -n "$(MERCHANT)" || { echo "MERCHANT is required: make $(MAKECMDGOALS) ENV=... MERCHANT=mer_..." >&2; exit 2; }

MERCHANTS_TOOL = $(PY) tools/merchants.py --env $(ENV)

merchants: require-env venv ## list merchants, their status and key ids (never a secret)
	$(MERCHANTS_TOOL) list

merchant-create: require-env venv ## create a merchant and its usage-plan API key (NAME=)
	@test -n "$(NAME)" || { echo "NAME is required: make merchant-create ENV=... NAME='Acme Books'" >&2; exit 2; }
	$(MERCHANTS_TOOL) create --name "$(NAME)"

merchant-key-issue: require-env require-merchant venv ## issue (or rotate in) a secret key, printed once (MERCHANT=, DAYS=)
	$(MERCHANTS_TOOL) issue-key --merchant $(MERCHANT) $(if $(DAYS),--expires-in-days $(DAYS),)

merchant-key-revoke: require-env require-merchant venv ## revoke a key (MERCHANT=, KEY=key_...)
	@test -n "$(KEY)" || { echo "KEY is required: make merchant-key-revoke ENV=... MERCHANT=... KEY=key_..." >&2; exit 2; }
	$(MERCHANTS_TOOL) revoke-key --merchant $(MERCHANT) --key $(KEY)

merchant-suspend: require-env require-merchant venv ## suspend a merchant: every key is denied (MERCHANT=)
	$(MERCHANTS_TOOL) suspend --merchant $(MERCHANT)

merchant-reactivate: require-env require-merchant venv ## reactivate a suspended merchant (MERCHANT=)
	$(MERCHANTS_TOOL) reactivate --merchant $(MERCHANT)

clean: ## remove build output (keeps the virtual environments)
	rm -rf build .pytest_cache .hypothesis .benchmarks
