//! The results table and target checks the benchmark prints.

/// One benchmark: our rate and the anchors', in operations (or keys) per second.
pub struct Row {
    pub name: String,
    pub ours: f64,
    pub sqlite: f64,
    pub redb: f64,
}

impl Row {
    pub fn new(name: &str, ours: f64, sqlite: f64, redb: f64) -> Self {
        Row {
            name: name.to_string(),
            ours,
            sqlite,
            redb,
        }
    }
}

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
    targets: Vec<(String, f64, f64)>,
}

impl Report {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, row: Row) {
        eprintln!("done: {}", row.name);
        self.rows.push(row);
    }

    pub fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// Records a ratio and the minimum it must reach.
    pub fn target(&mut self, name: &str, ratio: f64, minimum: f64) {
        self.targets.push((name.to_string(), ratio, minimum));
    }

    pub fn print(&self, quick: bool) {
        println!();
        if quick {
            println!("(quick run: small workloads, figures are indicative only)");
        }
        println!("machine: {}", machine());
        println!();
        println!("| benchmark (ops/s, higher is better) | kvhost embedded | SQLite, Spin-style | raw redb | kvhost / SQLite | kvhost / redb |");
        println!("|---|---:|---:|---:|---:|---:|");
        for row in &self.rows {
            println!(
                "| {} | {:.0} | {:.0} | {:.0} | {:.2}x | {:.2}x |",
                row.name,
                row.ours,
                row.sqlite,
                row.redb,
                row.ours / row.sqlite,
                row.ours / row.redb
            );
        }
        println!();
        for note in &self.notes {
            println!("- {note}");
        }
        for (name, ratio, minimum) in &self.targets {
            let verdict = if *ratio >= *minimum { "met" } else { "MISSED" };
            println!("- target: {name}: {ratio:.1}x (target >= {minimum}x): {verdict}");
        }
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, Linux {}, temp dir {}",
        kernel.trim(),
        std::env::temp_dir().display()
    )
}
