#!/usr/bin/env bash
# Builds the npm package `pocketmq` into wasm/pkg/: the engine compiled to wasm,
# wasm-bindgen glue for Node (CommonJS, loads synchronously) and for browsers
# (ES module, fetches the .wasm), the ES-module wrapper and its TypeScript
# declarations. Needs the wasm32-unknown-unknown target and the wasm-bindgen CLI
# of the same version as the wasm-bindgen crate in Cargo.lock.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="$here/pkg"
cd "$root"

want="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)"
have="$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)"
if [ "$have" != "$want" ]; then
  echo "build.sh: need wasm-bindgen CLI $want (Cargo.lock), found '${have:-none}':" >&2
  echo "  cargo install wasm-bindgen-cli --version $want" >&2
  exit 1
fi

# The shipped engine favours size: the workspace's release profile keeps debug
# info for native profiling, which a download does not want. (Overridable.)
export CARGO_PROFILE_RELEASE_OPT_LEVEL="${CARGO_PROFILE_RELEASE_OPT_LEVEL:-3}"
export CARGO_PROFILE_RELEASE_LTO="${CARGO_PROFILE_RELEASE_LTO:-fat}"
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS="${CARGO_PROFILE_RELEASE_CODEGEN_UNITS:-1}"
export CARGO_PROFILE_RELEASE_DEBUG="${CARGO_PROFILE_RELEASE_DEBUG:-0}"
cargo build --release -p pocketmq-wasm --target wasm32-unknown-unknown
target_dir="$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
wasm="$target_dir/wasm32-unknown-unknown/release/pocketmq_wasm.wasm"

rm -rf "$out"
mkdir -p "$out"
bindgen=(wasm-bindgen --no-typescript --remove-name-section --remove-producers-section)
"${bindgen[@]}" --target nodejs --out-dir "$out/node" "$wasm"
"${bindgen[@]}" --target web --out-dir "$out/web" "$wasm"
# The package is "type": "module"; the Node glue is CommonJS.
printf '{ "type": "commonjs" }\n' > "$out/node/package.json"

for f in pocketmq.js engine.js errors.js wire.js node_fs.js node.js web.js remote.js index.d.ts README.md; do cp "$here/js/$f" "$out/"; done
version="$(awk -F'"' '/^\[workspace.package\]/ { p = 1 } p && /^version/ { print $2; exit }' Cargo.toml)"
node -e '
  const fs = require("fs");
  const [src, dst, version] = process.argv.slice(1);
  const pkg = JSON.parse(fs.readFileSync(src, "utf8"));
  pkg.version = version;
  fs.writeFileSync(dst, JSON.stringify(pkg, null, 2) + "\n");
' "$here/js/package.json" "$out/package.json" "$version"

size="$(wc -c < "$out/web/pocketmq_wasm_bg.wasm")"
gz="$(gzip -9 -c "$out/web/pocketmq_wasm_bg.wasm" | wc -c)"
echo "build.sh: wasm/pkg ready (pocketmq $version; engine $size bytes, $gz gzipped)"
