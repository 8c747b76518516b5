#!/usr/bin/env bash
# Builds the binary to ship with the `dist` profile (release plus fat LTO, one codegen unit):
# `dist/flotilla` without debug sections (and without the symbol table), and
# `dist/flotilla.debug` beside it holding the line tables and symbols the profile compiled in. The shipped binary names its debug file (`.gnu_debuglink`), so `perf
# report`, `gdb` and `addr2line` that find `flotilla.debug` next to it (or in
# /usr/lib/debug) still show functions, files and lines.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --profile dist --bin flotilla
mkdir -p dist
cp target/dist/flotilla dist/flotilla.full
objcopy --only-keep-debug dist/flotilla.full dist/flotilla.debug
objcopy --strip-all --add-gnu-debuglink=dist/flotilla.debug dist/flotilla.full dist/flotilla
rm dist/flotilla.full
ls -l dist/flotilla dist/flotilla.debug
