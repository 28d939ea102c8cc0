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
