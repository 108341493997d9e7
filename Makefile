# PMM platform. Two commands on a fresh machine:
#   make run    install everything, start Kafka, the store and all five services
#   make test   install everything, start Kafka and the store if needed, run every test
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PYTHON_DOWNLOADS ?= never

UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
export UV
SEED_ORGS ?= pmm szw bzk jenv ocw vws fin bz uwv svb duo cak cjib belastingdienst toeslagen dji vrc coa gm0363 gm0599 gm0344 gm0518 gm0014
# The store's URL as deploy/local/store.sh gives it (PMM_MONGODB_URL wins when set).
STORE_URL = $${PMM_MONGODB_URL:-$$(bash deploy/local/store.sh url)}
ORG ?= pmm
ROLE ?= maatwerk_professional
SUB ?=
# Every image: <service>:<port>; tagged with the service's version (its pyproject.toml).
IMAGES := register:8001 loket:8002 let:8003 overbrugging:8004 signalen:8005 console:8000
REGISTRY ?=
OVERLAY ?= local

.PHONY: help install infra topics keys run stop reset test lint schemas token seed org-credentials images k8s k8s-render k8s-local-key chromium

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	@echo "installing uv (Python package manager) from PyPI..."
	python3 -m pip install --user --quiet uv

install: $(UV) ## install the Python workspace (uv, locked dependencies)
	@"$(UV)" sync --locked --quiet

infra: ## start Kafka and the MongoDB-wire store (deploy/local)
	@bash deploy/local/infra.sh up

topics: install infra ## provision every topic of the catalogue (idempotent)
	@"$(UV)" run --no-sync pmm-contracts topics $(addprefix --org ,$(SEED_ORGS))

keys: install ## create the local token issuer's key pair (.local/issuer)
	@"$(UV)" run --no-sync pmm-token keys >/dev/null

run: install infra topics keys ## bring up the whole platform
	@echo "starting the services..."
	@bash deploy/local/services.sh start
	@PMM_MONGODB_URL="$(STORE_URL)" "$(UV)" run --no-sync pmm-register seed
	@echo ""
	@echo "PMM is up. Kafka 127.0.0.1:9092, store $(STORE_URL)"
	@echo "  register     http://127.0.0.1:8001/docs"
	@echo "  loket        http://127.0.0.1:8002/docs"
	@echo "  let          http://127.0.0.1:8003/docs"
	@echo "  overbrugging http://127.0.0.1:8004/docs"
	@echo "  signalen     http://127.0.0.1:8005/docs"
	@echo "  console      http://127.0.0.1:8000/  (open this: the web application)"
	@echo "A token: make token ORG=uwv ROLE=maatwerk_professional. Stop: make stop"

stop: ## stop the services, Kafka and the store
	@bash deploy/local/services.sh stop
	@bash deploy/local/infra.sh down

reset: stop ## stop, then delete the local broker's and store's data (keeps the jars and the build)
	@rm -rf .local/kafka/data .local/ferretdb/data .local/mongo/data
	@echo "reset: local Kafka and store data deleted; the next make run starts empty"

test: install infra keys chromium ## run every test against the real broker and store
	@"$(UV)" run --no-sync pytest $(ARGS)

# The console's browser tests drive Debian's chromium (Playwright, no browser download).
chromium: ## install chromium for the console's browser tests (apt, once)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "chromium is missing and apt-get is not available: install Chromium with your" \
	         "package manager (the console's browser tests need it on PATH)" >&2; exit 1; fi; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing chromium (apt-get, Debian's package)..."; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

lint: install ## ruff and mypy
	@"$(UV)" run --no-sync ruff check .
	@"$(UV)" run --no-sync ruff format --check .
	@"$(UV)" run --no-sync mypy contracts/src runtime/src services/*/src

seed: install infra ## load services/register/seed/organisations.json (idempotent)
	@PMM_MONGODB_URL="$(STORE_URL)" "$(UV)" run --no-sync pmm-register seed

schemas: install ## regenerate contracts/schemas (refuses breaking changes)
	@"$(UV)" run --no-sync pmm-contracts schemas

org-credentials: install infra ## an organisation's Kafka client.properties: make org-credentials ORG=uwv
	@"$(UV)" run --no-sync pmm-contracts org-credentials --org $(ORG)

token: keys ## print a development token: make token ORG=uwv ROLE=maatwerk_professional SUB=p-1
	@"$(UV)" run --no-sync pmm-token --org $(ORG) --role $(ROLE) $(if $(SUB),--sub $(SUB))

images: ## build every service image from deploy/Dockerfile, tagged <REGISTRY/>pmm-<service>:<version>
	@command -v docker >/dev/null || { echo "images: docker is not installed"; exit 1; }
	@for entry in $(IMAGES); do \
	  name=$${entry%%:*}; port=$${entry##*:}; \
	  version=$$(sed -n 's/^version = "\(.*\)"/\1/p' services/$$name/pyproject.toml); \
	  tag="$(if $(REGISTRY),$(REGISTRY)/)pmm-$$name:$$version"; \
	  echo "building $$tag"; \
	  docker build -f deploy/Dockerfile --build-arg SERVICE=$$name --build-arg PORT=$$port \
	    --build-arg VERSION=$$version -t "$$tag" . || exit 1; \
	done

k8s: install ## regenerate deploy/k8s/generated/ from the code (topic catalogue, subscriptions)
	@"$(UV)" run --no-sync python deploy/k8s/generate.py

k8s-render: ## print an overlay's manifests: make k8s-render OVERLAY=production (kustomize v5)
	@bash deploy/k8s/kustomize.sh build deploy/k8s-overlays/$(OVERLAY)

k8s-local-key: keys ## give the local overlay the local token issuer's public key
	@cp .local/issuer/public.pem deploy/k8s-overlays/local/issuer-public.pem
	@echo "deploy/k8s-overlays/local/issuer-public.pem: the key of make token"

# Not part of `make test`: the performance figures on the local stack (docs/performance.md).
.PHONY: bench
BENCH_ARGS ?=
bench: install infra keys ## performance figures (docs/performance.md); QUICK=1 for ~2-5 min
	@"$(UV)" run --no-sync python bench/run.py $(if $(QUICK),--quick) $(BENCH_ARGS)
