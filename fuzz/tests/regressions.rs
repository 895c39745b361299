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
    ("tls", apitool_fuzz::tls),
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

/// The TLS seeds are connections recorded in testdata/ (their streams in the target's input
/// form): with the key logs the target holds, each decrypts to its exchanges, also when the
/// streams come in pieces of a few bytes; a gap in the server's stream costs the exchange
/// after it, not the ones before.
#[test]
fn tls_seeds_decrypt() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/tls");
    for (name, exchanges) in [
        ("tls12-aes128gcm", 2),
        ("tls12-aes128gcm-split", 2),
        ("tls12-chacha20", 2),
        ("tls12-cbc-etm", 2),
        ("tls12-cbc-mte", 2),
        ("tls13-chacha20", 1),
        ("tls13-aes128gcm", 1),
        ("tls13-keyupdate", 3),
    ] {
        let (stats, out) = apitool_fuzz::tls_run(&std::fs::read(root.join(name)).unwrap());
        let complete = out.iter().filter(|e| e.request.is_some() && e.response.is_some() && e.anomalies.is_empty()).count();
        assert_eq!(complete, exchanges, "{name}: {stats:?}");
        assert_eq!((stats.decryption_failed, stats.no_key), (0, 0), "{name}");
    }
}
