//! Guest benchmark: the same Python loop (target/guests/bench.wasm: sequential set, get,
//! exists, then a full listing of N keys with 100-byte values) under `kvhost run` on each
//! backend and under the anchor, `wasmtime run -S keyvalue` (wasmtime-cli 48.0.8, whose store
//! is an in-memory map), in one run, printed side by side.
//!
//! ```text
//! ./scripts/install-anchors.sh              # once: wasmtime-cli 48.0.8 into target/anchors
//! cargo bench -p kvhost-cli --bench guest   # `-- --quick` for one round, `-- --rounds N` for N
//! ```
//! Timings are taken inside the guest around each phase, so process start and compilation
//! are not in the figures. Each engine runs `ROUNDS` times, interleaved with the others, on a
//! fresh data directory; the table shows the median round. The disk's own fdatasync rate is
//! measured in the same run, next to the `immediate` set rate it bounds.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const KVHOST: &str = env!("CARGO_BIN_EXE_kvhost");
const ANCHOR_VERSION: &str = "wasmtime 48.0.8";
const KEYS: usize = 20_000;
const VALUE_BYTES: usize = 100;
const PHASES: [&str; 4] = ["set", "get", "exists", "list"];

/// One engine under test: a name and how to run the bench guest on a fresh directory.
struct Engine {
    name: &'static str,
    command: Box<dyn Fn(&Path) -> Command>,
}

/// Seconds per phase of one run.
type Phases = BTreeMap<String, f64>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|arg| arg == "--quick");
    // `--rounds N`: more rounds for a steadier median on a noisy machine.
    let rounds = args
        .iter()
        .position(|arg| arg == "--rounds")
        .and_then(|at| args.get(at + 1))
        .map_or(if quick { 1 } else { 5 }, |n| {
            n.parse::<usize>().expect("--rounds takes a number")
        });
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new(root.join("scripts/build-guests.sh"))
        .status()
        .expect("scripts/build-guests.sh runs");
    assert!(status.success(), "building the guests failed");
    let guest = root.join("target/guests/bench.wasm");
    let wasmtime = find_anchor(&root);
    let work = tempfile::tempdir().expect("temp dir");
    let cache = work.path().join("kvhost-cache");

    // The anchor runs precompiled too, so neither side compiles inside the measured runs.
    let cwasm = work.path().join("bench.cwasm");
    run_ok(
        Command::new(&wasmtime)
            .arg("compile")
            .arg(&guest)
            .arg("-o")
            .arg(&cwasm),
    );

    let engines = engines(&wasmtime, &cwasm, &guest, &cache);
    let mut runs: BTreeMap<&str, Vec<Phases>> = BTreeMap::new();
    for round in 0..=rounds {
        for engine in &engines {
            let dir = tempfile::tempdir_in(work.path()).expect("temp dir");
            write_config(dir.path());
            let phases = run_guest(&mut (engine.command)(dir.path()));
            if round > 0 {
                // Round 0 warms the compile cache and the page cache.
                runs.entry(engine.name).or_default().push(phases);
            }
        }
    }
    let fdatasync = fdatasync_rate(work.path(), Duration::from_secs(2));
    report(&engines, &runs, fdatasync, rounds);
}

fn engines(wasmtime: &Path, cwasm: &Path, guest: &Path, cache: &Path) -> Vec<Engine> {
    let kvhost = |bucket: &'static str, extra: &'static [&'static str]| {
        let guest = guest.to_path_buf();
        let cache = cache.to_path_buf();
        Box::new(move |dir: &Path| {
            let mut command = Command::new(KVHOST);
            command
                .current_dir(dir)
                .args(["run", "--config", "kvhost.toml", "--cache-dir"])
                .arg(&cache)
                .args(extra)
                .arg(&guest)
                .args([bucket, &KEYS.to_string(), &VALUE_BYTES.to_string()]);
            command
        }) as Box<dyn Fn(&Path) -> Command>
    };
    let (wasmtime, cwasm) = (wasmtime.to_path_buf(), cwasm.to_path_buf());
    vec![
        Engine {
            name: "wasmtime -S keyvalue (in-memory)",
            command: Box::new(move |dir: &Path| {
                let mut command = Command::new(&wasmtime);
                command
                    .current_dir(dir)
                    .args(["run", "-S", "keyvalue", "--allow-precompiled"])
                    .arg(&cwasm)
                    .args(["", &KEYS.to_string(), &VALUE_BYTES.to_string()]);
                command
            }),
        },
        Engine {
            name: "kvhost memory",
            command: kvhost("memory", &[]),
        },
        Engine {
            name: "kvhost embedded relaxed",
            command: kvhost("relaxed", &[]),
        },
        Engine {
            name: "kvhost embedded immediate",
            command: kvhost("immediate", &[]),
        },
    ]
}

/// Buckets named after their backend, so one config serves every kvhost engine.
fn write_config(dir: &Path) {
    std::fs::write(
        dir.join("kvhost.toml"),
        "data_dir = \"data\"\n[buckets.memory]\nbackend = \"memory\"\n\
         [buckets.relaxed]\ndurability = \"relaxed\"\n[buckets.immediate]\n",
    )
    .expect("config written");
}

fn find_anchor(root: &Path) -> PathBuf {
    let wasmtime = std::env::var_os("KVHOST_BENCH_WASMTIME")
        .map_or_else(|| root.join("target/anchors/bin/wasmtime"), PathBuf::from);
    let version = Command::new(&wasmtime).arg("--version").output();
    match version {
        Ok(output) if String::from_utf8_lossy(&output.stdout).starts_with(ANCHOR_VERSION) => {
            wasmtime
        }
        _ => {
            eprintln!(
                "error: the anchor {ANCHOR_VERSION} was not found at {}; run \
                 ./scripts/install-anchors.sh (or set KVHOST_BENCH_WASMTIME)",
                wasmtime.display()
            );
            std::process::exit(2);
        }
    }
}

fn run_ok(command: &mut Command) -> Vec<u8> {
    let output = command.output().expect("command starts");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn run_guest(command: &mut Command) -> Phases {
    let stdout = run_ok(command);
    let line = String::from_utf8_lossy(&stdout);
    let json: serde_json::Value = serde_json::from_str(line.trim()).expect("guest prints JSON");
    assert_eq!(json["keys"], KEYS, "the guest ran {line}");
    PHASES
        .iter()
        .map(|phase| {
            let seconds = json[phase].as_f64().expect("phase timed");
            (phase.to_string(), seconds)
        })
        .collect()
}

/// Synchronous 4 KiB writes per second (write + fdatasync) in `dir`: the disk's own bound on
/// one-at-a-time durable writes.
fn fdatasync_rate(dir: &Path, duration: Duration) -> f64 {
    let mut file = tempfile::tempfile_in(dir).expect("temp file");
    let block = [7u8; 4096];
    let start = Instant::now();
    let mut syncs = 0u64;
    while start.elapsed() < duration {
        file.write_all(&block).expect("write");
        file.sync_data().expect("fdatasync");
        syncs += 1;
    }
    syncs as f64 / start.elapsed().as_secs_f64()
}

fn median_ops(runs: &[Phases], phase: &str) -> f64 {
    let mut rates: Vec<f64> = runs.iter().map(|run| KEYS as f64 / run[phase]).collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn report(engines: &[Engine], runs: &BTreeMap<&str, Vec<Phases>>, fdatasync: f64, rounds: usize) {
    let anchor = engines[0].name;
    let rate = |engine: &str, phase: &str| median_ops(&runs[engine], phase);
    println!(
        "\n## Guest loop: {KEYS} keys, {VALUE_BYTES}-byte values, median of {rounds} rounds \
         (ops/s; list = keys/s)\n"
    );
    println!("| engine | set | get | exists | list |");
    println!("|---|---:|---:|---:|---:|");
    for engine in engines {
        let cells: Vec<String> = PHASES
            .iter()
            .map(|phase| {
                let ours = rate(engine.name, phase);
                if engine.name == anchor {
                    format!("{ours:.0}")
                } else {
                    format!("{ours:.0} ({:.2}x)", ours / rate(anchor, phase))
                }
            })
            .collect();
        println!("| {} | {} |", engine.name, cells.join(" | "));
    }
    println!("| disk: 4 KiB write + fdatasync | {fdatasync:.0} | | | |");
    println!("\nRatios are against {anchor} in the same run.\n");
    let target = |what: &str, ratio: f64, goal: f64| {
        let verdict = if ratio >= goal { "met" } else { "MISSED" };
        println!("- {what}: {ratio:.2}x (target >= {goal}x) {verdict}");
    };
    let vs = |engine: &str, phase: &str| rate(engine, phase) / rate(anchor, phase);
    target(
        "durable (immediate) embedded get vs wasmtime in-memory get",
        vs("kvhost embedded immediate", "get"),
        0.9,
    );
    target(
        "memory-backend set vs wasmtime set",
        vs("kvhost memory", "set"),
        0.9,
    );
    target(
        "relaxed embedded set vs wasmtime set",
        vs("kvhost embedded relaxed", "set"),
        0.5,
    );
    println!(
        "- immediate embedded set: {:.0}/s, {:.2}x the disk's fdatasync rate ({fdatasync:.0}/s)",
        rate("kvhost embedded immediate", "set"),
        rate("kvhost embedded immediate", "set") / fdatasync
    );
}
