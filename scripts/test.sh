#!/usr/bin/env bash
# The project's test command (the README's second set-up command).
# Builds the binary once, then runs every unit, integration and end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --bin flotilla
cargo test --workspace -- --test-threads=2
