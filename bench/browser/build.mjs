// Builds what the browser benchmarks need, without touching shared outputs:
//   1. syncline-wasm for wasm32 (profile wasm-release, cdylib-only so LTO
//      applies — the same commands as `cargo xtask build`), then wasm-bindgen
//      into .build/syncline-wasm;
//   2. the relay (`cargo build --release -p syncline-relay`);
//   3. aes-wasm (this folder's own crate: syncline-core's seal/open) into
//      .build/aes-wasm, and at opt-level 3 into .build/aes-wasm-speed;
//   4. the page with Vite into .build/site.
// Cargo writes to $CARGO_TARGET_DIR, default <repo>/target/bench.
// `node build.mjs --skip-cargo` only re-bundles the page.
import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "..", "..");
export const targetDir = resolve(process.env.CARGO_TARGET_DIR ?? join(repoRoot, "target", "bench"));
const build = join(here, ".build");
const env = { ...process.env, CARGO_TARGET_DIR: targetDir };

function run(cmd, args, cwd = repoRoot) {
  console.error(`$ ${cmd} ${args.join(" ")}`);
  const r = spawnSync(cmd, args, { cwd, env, stdio: "inherit" });
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status ?? r.signal})`);
}

const skipCargo = process.argv.includes("--skip-cargo");
if (!skipCargo) {
  const wasmTarget = ["--target", "wasm32-unknown-unknown", "--profile", "wasm-release"];
  run("cargo", ["rustc", "-p", "syncline-wasm", "--lib", "--crate-type", "cdylib", ...wasmTarget]);
  run("wasm-bindgen", [
    "--target", "web", "--out-dir", join(build, "syncline-wasm"),
    join(targetDir, "wasm32-unknown-unknown", "wasm-release", "syncline_wasm.wasm"),
  ]);
  run("cargo", ["build", "--release", "-p", "syncline-relay"]);
  run("cargo", ["build", "--manifest-path", join(here, "aes-wasm", "Cargo.toml"), "--lib", ...wasmTarget]);
  run("wasm-bindgen", [
    "--target", "web", "--out-dir", join(build, "aes-wasm"),
    join(targetDir, "wasm32-unknown-unknown", "wasm-release", "syncline_bench_aes.wasm"),
  ]);
  // The same crate at opt-level 3, to show what opt-level "z" costs AES.
  run("cargo", ["build", "--manifest-path", join(here, "aes-wasm", "Cargo.toml"), "--lib", "--target", "wasm32-unknown-unknown", "--profile", "wasm-speed"]);
  run("wasm-bindgen", [
    "--target", "web", "--out-dir", join(build, "aes-wasm-speed"),
    join(targetDir, "wasm32-unknown-unknown", "wasm-speed", "syncline_bench_aes.wasm"),
  ]);
}
run("npx", ["vite", "build", "--config", join(here, "vite.config.mjs")], here);
console.error(`built: ${build}`);
