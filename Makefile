# Lobby: `make run` starts everything locally, `make test` runs every test.

.PHONY: run test bench build lint fmt docs deploy-check clean

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

bench:
	bash bench/run.sh

build:
	cargo build --workspace --bins

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

# The configuration reference in docs/operations.md, from the code that
# reads the settings (a test fails when it is stale).
docs:
	cargo run --quiet -p lobby-dev -- settings-reference --write docs/operations.md

deploy-check:
	bash deploy/check.sh

clean:
	cargo clean
	rm -rf .run
