//! `cargo xtask <command>`: the project's only entry points.
//!
//! - `demo`: install what is missing, build, and serve the demo app from a
//!   relay on 127.0.0.1:8787. `demo --cluster`: PostgreSQL, NATS and three
//!   relays (8787, 8788, 8789) sharing one log, each serving the demo.
//! - `test`: install what is missing, build, run every test layer, and end
//!   with one line `N passed, M failed`.
//! - `build`: leave `target/release/syncline-relay`, the `syncline` CLI in
//!   `target/release/syncline`, and the npm package in `npm/dist/`; and, for
//!   the end-to-end tests only, the package with a test-hooks wasm in
//!   `target/test-hooks/dist/` (see [`build_test_hooks`]).
//! - `install`: only the idempotent installs (including `nats-server` for
//!   the relay cluster's tests, which start and stop their own PostgreSQL
//!   and NATS servers under `target/`).
//!
//! Everything is plain `std::process::Command`s, so what each step runs is
//! printed and can be run by hand.

mod cluster;
mod install;
mod summary;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use summary::Tally;

const USAGE: &str = "usage: cargo xtask <demo [--cluster]|test|build|install>";

fn main() -> Result<()> {
    let command = std::env::args().nth(1).unwrap_or_default();
    let root = repo_root();
    match command.as_str() {
        "install" => install::all(&root),
        "build" => {
            install::all(&root)?;
            build(&root)
        }
        "test" => {
            install::all(&root)?;
            build(&root)?;
            test(&root)
        }
        "demo" => {
            install::all(&root)?;
            build(&root)?;
            if std::env::args().nth(2).as_deref() == Some("--cluster") {
                let relay = target_dir(&root).join("release/syncline-relay");
                cluster::demo(&root, &relay)
            } else {
                demo(&root)
            }
        }
        _ => bail!("{USAGE}"),
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the repository root")
        .to_path_buf()
}

/// Cargo's output directory: `$CARGO_TARGET_DIR` if set (relative to the
/// repository root), else `target/`.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// Prints and runs a command in `dir`, failing if it fails.
pub fn run(dir: &Path, program: &str, args: &[&str]) -> Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .with_context(|| format!("could not start `{program}`: is it installed?"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn build(root: &Path) -> Result<()> {
    run(
        root,
        "cargo",
        &["build", "--release", "-p", "syncline-relay"],
    )?;
    // The CLI and its example agent (the end-to-end tests run the agent), in
    // the debug profile the native tests build anyway.
    run(
        root,
        "cargo",
        &["build", "-p", "syncline-cli", "--bins", "--examples"],
    )?;
    let wasm = build_wasm(root, "wasm-release", &[])?;
    // The `name` section (function names, for stack traces) is ~380 KB raw,
    // ~100 KB gzip: browsers don't need it. (`wasm-opt -Oz` on top saves 6%
    // raw and nothing gzipped, for minutes of build: not used; see
    // docs/benchmarks/size.md.)
    run(
        root,
        "wasm-bindgen",
        &[
            "--target",
            "web",
            "--remove-name-section",
            "--remove-producers-section",
            "--out-dir",
            "npm/src/wasm",
            wasm.to_str().context("non-UTF-8 path")?,
        ],
    )?;
    report_wasm_size(&root.join("npm/src/wasm/syncline_wasm_bg.wasm"));
    run(&root.join("npm"), "npm", &["run", "build"])?;
    run(&root.join("demo-app"), "npm", &["run", "build"])?;
    build_test_hooks(root)
}

/// The package again, with a wasm built with syncline-wasm's `test-hooks`
/// feature (it exports `crashForTesting`), into `target/test-hooks/dist/`:
/// the end-to-end crash test loads it from there; nothing else does, and
/// `npm/dist/` (what is packed and shipped) never has it.
///
/// Only the wasm is built again, in its own profile (`wasm-test-hooks`: no
/// LTO, so it takes seconds once its dependencies are built), never
/// writing the shipped build's output (a cdylib's file name does not
/// depend on its features: two builds taking turns at one file would let
/// cargo take one's file for the other's). The package's compiled JS is
/// copied from `npm/dist/`.
fn build_test_hooks(root: &Path) -> Result<()> {
    let wasm = build_wasm(root, "wasm-test-hooks", &["--features", "test-hooks"])?;
    let out = target_dir(root).join("test-hooks");
    let dist = out.join("dist");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("removing {}", out.display()))?;
    }
    copy_dir(&root.join("npm/dist"), &dist)?;
    let glue = dist.join("wasm");
    std::fs::remove_dir_all(&glue).with_context(|| format!("removing {}", glue.display()))?;
    run(
        root,
        "wasm-bindgen",
        &[
            "--target",
            "web",
            "--out-dir",
            glue.to_str().context("non-UTF-8 path")?,
            wasm.to_str().context("non-UTF-8 path")?,
        ],
    )
}

/// Builds the wasm crate in `profile` (with `extra` cargo arguments) and
/// returns the module's path. A cdylib-only build, so LTO applies where the
/// profile asks for it (it is skipped for cdylib+rlib crates).
fn build_wasm(root: &Path, profile: &str, extra: &[&str]) -> Result<PathBuf> {
    let mut args = vec![
        "rustc",
        "-p",
        "syncline-wasm",
        "--lib",
        "--crate-type",
        "cdylib",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        profile,
    ];
    args.extend_from_slice(extra);
    run(root, "cargo", &args)?;
    Ok(target_dir(root)
        .join("wasm32-unknown-unknown")
        .join(profile)
        .join("syncline_wasm.wasm"))
}

/// Copies the directory `from` to `to` (created), recursively.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Prints the size of the shipped wasm, raw and gzipped (`gzip -9`, as a
/// server would send it), when `gzip` is on the PATH.
fn report_wasm_size(wasm: &Path) {
    let raw = std::fs::metadata(wasm).map(|m| m.len()).unwrap_or(0);
    let gzip = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(wasm)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| out.stdout.len());
    match gzip {
        Some(gzip) => eprintln!("syncline_wasm_bg.wasm: {raw} B raw, {gzip} B gzip -9"),
        None => eprintln!("syncline_wasm_bg.wasm: {raw} B raw"),
    }
}

fn test(root: &Path) -> Result<()> {
    let relay = target_dir(root).join("release/syncline-relay");
    let relay = relay.to_str().context("non-UTF-8 path")?;
    let agent = target_dir(root).join("debug/examples/agent");
    let agent = agent.to_str().context("non-UTF-8 path")?;
    let layers: [(&str, &Path, &str, Vec<&str>); 5] = [
        (
            "native (unit, simulation, relay integration)",
            root,
            "cargo",
            vec!["test", "--workspace", "--exclude", "syncline-bench"],
        ),
        (
            "browser (wasm-bindgen-test, headless Chromium)",
            root,
            "cargo",
            vec![
                "test",
                "-p",
                "syncline-wasm",
                "--target",
                "wasm32-unknown-unknown",
            ],
        ),
        (
            "npm package (node --test)",
            &root.join("npm"),
            "npm",
            vec!["test"],
        ),
        (
            "end to end (Playwright, real relay)",
            &root.join("tests"),
            "npm",
            vec!["test"],
        ),
        (
            "packaging (npm pack into Vite+React, Vite+Svelte, webpack 5, Next.js SSR; Chromium; SSR import)",
            &root.join("tests"),
            "node",
            vec![
                "--test",
                "--test-concurrency=1",
                "packaging/packaging.test.mjs",
            ],
        ),
    ];
    let mut total = Tally::default();
    let mut failed_layers = Vec::new();
    // Format and lints first: each counts as one check, passed or failed.
    let checks: [(&str, Vec<&str>); 3] = [
        (
            "format (cargo fmt --check)",
            vec!["fmt", "--all", "--", "--check"],
        ),
        (
            "lints (clippy -D warnings, native)",
            vec![
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        (
            "lints (clippy -D warnings, wasm32)",
            vec![
                "clippy",
                "-p",
                "syncline-wasm",
                "--target",
                "wasm32-unknown-unknown",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
    ];
    for (name, args) in checks {
        eprintln!("\n=== {name} ===");
        if run(root, "cargo", &args).is_ok() {
            total.passed += 1;
        } else {
            total.failed += 1;
            failed_layers.push(name);
        }
    }
    for (name, dir, program, args) in layers {
        eprintln!("\n=== {name} ===");
        let env = [("SYNCLINE_RELAY_BIN", relay), ("SYNCLINE_AGENT_BIN", agent)];
        let (ok, tally) = run_counting(dir, program, &args, &env)?;
        if !ok || tally.failed > 0 || tally.passed == 0 {
            failed_layers.push(name);
        }
        total.add(tally);
    }
    if !failed_layers.is_empty() {
        eprintln!("\nfailed layers: {}", failed_layers.join("; "));
        // A layer that failed without reporting a failed test (a build error,
        // a crash, no tests at all) still counts as a failure.
        total.failed = total.failed.max(failed_layers.len());
    }
    println!("{}", total.line());
    if failed_layers.is_empty() {
        Ok(())
    } else {
        std::process::exit(1)
    }
}

/// Runs a test command, echoing its output, and counts what it reports.
fn run_counting(
    dir: &Path,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<(bool, Tally)> {
    eprintln!("$ {program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{program}`"))?;
    let mut tally = Tally::default();
    let stdout = child.stdout.take().context("no stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap_or_default();
        println!("{line}");
        tally.read(&line);
    }
    let status = child.wait()?;
    Ok((status.success(), tally))
}

fn demo(root: &Path) -> Result<()> {
    let data = root.join("target/demo-data");
    std::fs::create_dir_all(&data)?;
    let relay = target_dir(root).join("release/syncline-relay");
    println!(
        "\nSyncline demo: open http://127.0.0.1:8787/ in two windows (copy the address, #doc included). Ctrl-C stops it.\n"
    );
    run(
        root,
        relay.to_str().context("non-UTF-8 path")?,
        &[
            "--listen",
            "127.0.0.1:8787",
            "--data",
            data.to_str().context("non-UTF-8 path")?,
            "--serve",
            "demo-app/dist",
        ],
    )
}
