//! The newer scenarios run end to end at a tiny size against the debug `flotilla` binary
//! (`cargo build --bin flotilla` first, as scripts/test.sh does). Nothing here checks a
//! time: only that each scenario completes and reports what it counts.

use std::path::PathBuf;
use std::process::Command;

fn flotilla() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let binary = target.join("debug/flotilla");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build --bin flotilla` first",
        binary.display()
    );
    binary
}

/// Runs `flotilla-bench ARGS --flotilla <debug binary>`; its stdout, or a panic with both
/// streams.
fn bench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_flotilla-bench"))
        .args(args)
        .arg("--flotilla")
        .arg(flotilla())
        .output()
        .expect("running flotilla-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "flotilla-bench {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn propagation_times_every_change_and_its_floor() {
    let out = bench(&["propagation", "--members", "2", "--changes", "3"]);
    assert!(
        out.contains("floor (the change written straight to all members at once): n=3"),
        "{out}"
    );
    assert!(out.contains("all members hold it): n=3"), "{out}");
}

#[test]
fn resync_restart_writes_nothing_to_members() {
    let out = bench(&[
        "resync",
        "--members",
        "2",
        "--apps",
        "3",
        "--settle-secs",
        "1",
    ]);
    assert!(out.contains("every Application reconciled (ok)"), "{out}");
    assert!(out.contains("member writes after the restart"), "{out}");
    let writes = out
        .lines()
        .find(|l| l.contains("member writes after the restart"))
        .unwrap_or_default();
    assert!(writes.ends_with("none (goal 0)"), "{out}");
}

#[test]
fn fleet_reports_rate_memory_and_cpu() {
    let out = bench(&["fleet", "--members", "2", "--apps", "2"]);
    assert!(out.contains("fleet: 2 members x 2 applications"), "{out}");
    assert!(out.contains("placements/s"), "{out}");
    assert!(out.contains("CPU per placement: hub"), "{out}");
    assert!(out.contains("hub RSS:"), "{out}");
}
