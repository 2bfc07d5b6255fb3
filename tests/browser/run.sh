#!/usr/bin/env bash
# Runs the headless-Chromium tests of the web example (needs wasm/build.sh's
# output, `npm ci` in tests/, and Chromium: CHROMIUM=/path overrides /usr/bin/chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
exec node --test browser/
