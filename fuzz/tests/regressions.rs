//! Runs every target over its committed inputs: the crashes, hangs and out-of-memory inputs the
//! fuzzers found (`regressions/<target>/`, each fixed) and the small hand-made seeds
//! (`seeds/<target>/`). This runs in CI; the fuzzing itself runs in `run.sh`.

use std::path::Path;
use std::time::{Duration, Instant};

/// A target's name and body.
type Target = (&'static str, fn(&[u8]));

const TARGETS: &[Target] = &[
    ("capture", apitool_fuzz::capture),
    ("wire", apitool_fuzz::wire),
    ("reassembly", apitool_fuzz::reassembly),
    ("http", apitool_fuzz::http),
    ("decode", apitool_fuzz::decode),
    ("convert", apitool_fuzz::convert),
    ("witness", apitool_fuzz::witness),
    ("bodies", apitool_fuzz::bodies),
    ("keylog", apitool_fuzz::keylog),
    ("ws", apitool_fuzz::ws),
    ("ws_conn", apitool_fuzz::ws_conn),
    ("h2", apitool_fuzz::h2),
];

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    v.sort();
    v
}

#[test]
fn every_target_survives_its_regressions_and_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut ran = 0;
    for (name, target) in TARGETS {
        for kind in ["regressions", "seeds"] {
            for path in inputs(&root.join(kind).join(name)) {
                let data = std::fs::read(&path).unwrap();
                let t = Instant::now();
                target(&data);
                let took = t.elapsed();
                // Generous for a debug build; a hang would take far longer.
                assert!(took < Duration::from_secs(20), "{}: {took:?}", path.display());
                ran += 1;
            }
        }
    }
    eprintln!("{ran} inputs");
    // The committed regressions at least: an empty run would pass without testing anything.
    assert!(ran >= 3, "only {ran} inputs found");
}
