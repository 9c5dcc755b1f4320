//! Installs what the build and tests need, only when it is missing.
//!
//! - the `wasm32-unknown-unknown` target (rustup);
//! - Chromium and ChromeDriver from the OS packages (Debian `chromium`,
//!   `chromium-driver`), for the browser and end-to-end tests;
//! - `wasm-bindgen-cli` at exactly the version in `Cargo.lock` (the CLI and
//!   the crate must match);
//! - the npm dependencies of `npm/`, `demo-app/`, `tests/` and the four
//!   packaging apps in `tests/packaging/apps/`, from their lockfiles (`npm ci`);
//! - for the relay cluster's tests and demo: `nats-server` (Debian's
//!   package) and PostgreSQL's server (`postgresql`, usually in the image);
//! - `strace`, for the relay's test that every ack follows its fsync
//!   (`crates/syncline-relay/tests/relay/fsync.rs`).
//!
//! Every step checks first, so a second run does nothing.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::run;

pub fn all(root: &Path) -> Result<()> {
    wasm_target(root)?;
    browser()?;
    cluster_services()?;
    strace()?;
    wasm_bindgen_cli(root)?;
    node_packages(root)
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wasm_target(root: &Path) -> Result<()> {
    let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if installed
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        return Ok(());
    }
    run(root, "rustup", &["target", "add", "wasm32-unknown-unknown"])
}

fn browser() -> Result<()> {
    let have = |p: &str| Path::new(p).exists();
    if have("/usr/bin/chromium") && have("/usr/bin/chromedriver") {
        return Ok(());
    }
    apt_install(&["chromium", "chromium-driver"])
}

/// The servers the relay cluster's tests run (they start and stop them
/// themselves: `syncline_relay::testing::services`).
pub fn cluster_services() -> Result<()> {
    if output("nats-server", &["--version"]).is_none() {
        apt_install(&["nats-server"])?;
    }
    let has_postgres = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .any(|v| v.path().join("bin/pg_ctl").is_file());
    if !has_postgres {
        apt_install(&["postgresql"])?;
    }
    Ok(())
}

/// `strace`: the relay's fsync-before-ack test traces its system calls.
fn strace() -> Result<()> {
    if output("strace", &["-V"]).is_some() {
        return Ok(());
    }
    apt_install(&["strace"])
}

/// `apt-get install` (as root, or through passwordless sudo).
fn apt_install(packages: &[&str]) -> Result<()> {
    let root_user = output("id", &["-u"]).is_some_and(|id| id.trim() == "0");
    let (program, prefix): (&str, &[&str]) = if root_user {
        ("apt-get", &[])
    } else {
        ("sudo", &["-n", "apt-get"])
    };
    let apt = |args: &[&str]| -> Result<()> {
        let all: Vec<&str> = prefix.iter().chain(args).copied().collect();
        run(Path::new("/"), program, &all).with_context(|| {
            format!(
                "installing needs root (or passwordless sudo): apt-get install {}",
                packages.join(" ")
            )
        })
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq"];
    install.extend_from_slice(packages);
    apt(&install)
}

/// The wasm-bindgen version pinned in Cargo.lock.
fn locked_wasm_bindgen(root: &Path) -> Result<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\""
            && let Some(version) = lines.next().and_then(|l| l.strip_prefix("version = \""))
        {
            return Ok(version.trim_end_matches('"').to_string());
        }
    }
    bail!("wasm-bindgen is not in Cargo.lock")
}

fn wasm_bindgen_cli(root: &Path) -> Result<()> {
    let want = locked_wasm_bindgen(root)?;
    let have = output("wasm-bindgen", &["--version"]).unwrap_or_default();
    if have.split_whitespace().nth(1) == Some(want.as_str()) {
        return Ok(());
    }
    run(
        root,
        "cargo",
        &[
            "install",
            "wasm-bindgen-cli",
            "--version",
            &want,
            "--locked",
        ],
    )
}

fn node_packages(root: &Path) -> Result<()> {
    if output("node", &["--version"]).is_none() || output("npm", &["--version"]).is_none() {
        bail!(
            "Node.js and npm are needed (Node 20.19 or newer): install them from your OS packages"
        );
    }
    for dir in [
        "npm",
        "demo-app",
        "tests",
        "tests/packaging/apps/vite-react",
        "tests/packaging/apps/vite-svelte",
        "tests/packaging/apps/vite-svelte4",
        "tests/packaging/apps/webpack",
        "tests/packaging/apps/next",
    ] {
        let dir = root.join(dir);
        let lock = dir.join("package-lock.json");
        let installed = dir.join("node_modules/.package-lock.json");
        let fresh = match (std::fs::metadata(&lock), std::fs::metadata(&installed)) {
            (Ok(l), Ok(i)) => i.modified()? >= l.modified()?,
            _ => false,
        };
        if !fresh {
            run(&dir, "npm", &["ci", "--no-audit", "--no-fund"])?;
        }
    }
    Ok(())
}
