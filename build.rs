//! Names the commit the binary is built from, for `apitool --version`: `APITOOL_COMMIT` when
//! set (packagers), else `git rev-parse --short HEAD`, else nothing (a crate tarball, no git).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=APITOOL_COMMIT");
    let commit = std::env::var("APITOOL_COMMIT").ok().filter(|c| !c.is_empty()).or_else(|| {
        let hash = git(&["rev-parse", "--short", "HEAD"])?;
        // Run again when HEAD moves (a commit, a checkout).
        for p in ["HEAD", "logs/HEAD"] {
            if let Some(path) = git(&["rev-parse", "--git-path", p]) {
                println!("cargo:rerun-if-changed={path}");
            }
        }
        Some(hash)
    });
    if let Some(c) = commit {
        println!("cargo:rustc-env=APITOOL_COMMIT={c}");
    }
    println!("cargo:rustc-env=APITOOL_PROFILE={}", std::env::var("PROFILE").unwrap_or_default());
}
