# Lobby: `make run` starts everything locally, `make test` runs every test.

.PHONY: run test bench build lint fmt deploy-check clean

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

deploy-check:
	bash deploy/check.sh

clean:
	cargo clean
	rm -rf .run
