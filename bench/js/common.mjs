// What the Node bench scripts share: the built package and numeric `--name value`
// arguments.
import { existsSync } from "node:fs";

/** The package's Node entry point, or an exit naming `script` when it is not built. */
export async function importPackage(script) {
  const pkg = new URL("../../wasm/pkg/node.js", import.meta.url);
  if (!existsSync(pkg)) {
    console.error(`${script}: build the package first (bash wasm/build.sh)`);
    process.exit(1);
  }
  return import(pkg.href);
}

/** The number after `--name` on the command line, or `fallback`. */
export function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}
