//! Running the `msenas` binary from command-line tests.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_msenas");

/// `msenas ARGS` in `cwd`.
pub fn run(args: &[&str], cwd: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run msenas")
}

/// `msenas ARGS` in `cwd`, which must succeed; its standard output.
pub fn ok(args: &[&str], cwd: &Path) -> String {
    let o = run(args, cwd);
    assert!(
        o.status.success(),
        "msenas {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}
