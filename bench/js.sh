#!/usr/bin/env bash
# The npm package's throughput in Node (bench/js/node_bench.mjs): builds the
# package, measures, and rewrites the JavaScript section of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash wasm/build.sh
node --expose-gc bench/js/node_bench.mjs --messages 200000 --runs 3 --batch 256 --write
