//! What the attention benches share: the backends and lengths to run, from the environment.
#![allow(dead_code)]

use burn::prelude::*;

/// `ATTENTION_BENCH_BACKENDS` (comma-separated: flex, ndarray, wgpu), else `default`; a backend
/// that does not answer (wgpu without an adapter) is left out.
#[allow(deprecated)] // `Device::ndarray` is deprecated upstream but still shipped.
pub fn devices(default: &str) -> Vec<(String, Device)> {
    let wanted = std::env::var("ATTENTION_BENCH_BACKENDS").unwrap_or_else(|_| default.into());
    wanted
        .split(',')
        .filter_map(|name| {
            let device = match name.trim() {
                "flex" => Device::flex(),
                "ndarray" => Device::ndarray(),
                "wgpu" => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
                other => panic!("ATTENTION_BENCH_BACKENDS: unknown backend `{other}`"),
            };
            answers(&device).then(|| (name.trim().to_string(), device))
        })
        .collect()
}

/// Whether the device runs one operation (wgpu panics on its own thread without an adapter).
fn answers(device: &Device) -> bool {
    let probe = device.clone();
    std::thread::spawn(move || Tensor::<1>::ones([1], &probe).into_data())
        .join()
        .is_ok()
}

/// `ATTENTION_BENCH_LENS` (comma-separated), else `default`.
pub fn lens(default: &str) -> Vec<usize> {
    std::env::var("ATTENTION_BENCH_LENS")
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|l| {
            l.trim()
                .parse()
                .expect("ATTENTION_BENCH_LENS: comma-separated lengths")
        })
        .collect()
}

/// Few, short samples: a 512-long case takes seconds per iteration on one CPU core.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
}

/// The process's peak resident memory (Linux `VmHWM`), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The command line of a bench whose cases each run in a child process of its own, so that
/// each case's peak resident memory is its own: `--case impl:mode:len` makes a child.
pub struct ChildBench {
    args: Vec<String>,
}

impl ChildBench {
    /// This process's arguments (cargo's `--bench` dropped).
    pub fn from_env() -> Self {
        Self {
            args: std::env::args()
                .skip(1)
                .filter(|a| a != "--bench")
                .collect(),
        }
    }

    /// The value after `flag`, if given.
    pub fn value(&self, flag: &str) -> Option<String> {
        let i = self.args.iter().position(|a| a == flag)?;
        self.args.get(i + 1).cloned()
    }

    /// `(impl, mode, len)` when this process is a child.
    pub fn case(&self) -> Option<(String, String, usize)> {
        let case = self.value("--case")?;
        let [which, mode, len]: [&str; 3] = case
            .splitn(3, ':')
            .collect::<Vec<_>>()
            .try_into()
            .expect("--case impl:mode:len");
        Some((
            which.into(),
            mode.into(),
            len.parse().expect("--case: a length"),
        ))
    }

    /// `--lens`, else `default` (comma-separated).
    pub fn lens(&self, default: &str) -> Vec<usize> {
        self.value("--lens")
            .unwrap_or_else(|| default.into())
            .split(',')
            .map(|l| l.parse().expect("--lens: comma-separated lengths"))
            .collect()
    }

    /// Runs every (length, mode, implementation) in a child of this executable with the
    /// flags `pass` handed on, prints a row per case, and writes the cases' JSON lines to
    /// `--json` when given.
    pub fn run_all(&self, lens: &[usize], modes: &[&str], impls: &[&str], pass: &[(&str, String)]) {
        let exe = std::env::current_exe().expect("own path");
        let mut results = Vec::new();
        println!(
            "{:>6} {:>8} {:>8} {:>12} {:>14}",
            "len", "mode", "impl", "ms/iter", "peak RSS MiB"
        );
        for &len in lens {
            for mode in modes {
                for which in impls {
                    let mut command = std::process::Command::new(&exe);
                    for (flag, value) in pass {
                        command.args([*flag, value.as_str()]);
                    }
                    let output = command
                        .args(["--case", &format!("{which}:{mode}:{len}")])
                        .output()
                        .expect("running a case");
                    let line = String::from_utf8_lossy(&output.stdout);
                    let Ok(result) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
                        let stderr = String::from_utf8_lossy(&output.stderr);
                        let last = stderr.lines().last().unwrap_or("");
                        println!("{len:>6} {mode:>8} {which:>8} failed: {last}");
                        continue;
                    };
                    println!(
                        "{len:>6} {mode:>8} {which:>8} {:>12.1} {:>14.0}",
                        result["ms_per_iter"].as_f64().unwrap_or(f64::NAN),
                        result["peak_rss_mib"].as_f64().unwrap_or(f64::NAN)
                    );
                    results.push(result);
                }
            }
        }
        if let Some(path) = self.value("--json") {
            let text = serde_json::to_string_pretty(&results).unwrap() + "\n";
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
    }
}

/// Iterations run and milliseconds per iteration of `step`, after one untimed call (kernel
/// compilation, allocator): at least 3 iterations and 2 seconds.
pub fn time_per_iter(mut step: impl FnMut()) -> (usize, f64) {
    step();
    let started = std::time::Instant::now();
    let mut iters = 0;
    while iters < 3 || started.elapsed().as_secs_f64() < 2.0 {
        step();
        iters += 1;
    }
    (
        iters,
        started.elapsed().as_secs_f64() * 1000.0 / iters as f64,
    )
}
