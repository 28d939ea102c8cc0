//! Helpers shared by the integration tests: devices, fixtures and comparisons.
#![allow(dead_code)]

use std::path::PathBuf;

use attention::{AttentionInput, AttentionPositions, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::prelude::*;
use serde_json::Value;

/// The CPU backends every test runs on.
#[allow(deprecated)] // `Device::ndarray` is deprecated in burn 0.22 but still shipped and supported.
pub fn cpu_devices() -> Vec<(&'static str, Device)> {
    vec![("flex", Device::flex()), ("ndarray", Device::ndarray())]
}

/// One test at a time on the wgpu device: two test threads submitting to it at once can
/// deadlock inside cubecl 0.11.3 (fusion autotune waiting for exclusive access to the device
/// while the other thread's submission waits on it; seen in `tests/fused.rs`, both threads
/// parked forever).
static WGPU: std::sync::Mutex<()> = std::sync::Mutex::new(());

thread_local! {
    /// The calling test's hold on [`WGPU`], released when its thread ends (pass or panic).
    static HOLD: std::cell::RefCell<Option<std::sync::MutexGuard<'static, ()>>> =
        const { std::cell::RefCell::new(None) };
}

/// The wgpu device when a graphics adapter (a GPU, or lavapipe) answers; the calling test
/// holds the wgpu device alone from here to its end (see [`WGPU`]).
///
/// Without one the wgpu checks are skipped with a note, except under CI (`CI` set), which
/// installs lavapipe and must run them. `ATTENTION_LAB_SKIP_WGPU` skips them explicitly.
pub fn wgpu_device() -> Option<Device> {
    HOLD.with(|hold| {
        let mut hold = hold.borrow_mut();
        if hold.is_none() {
            // A test that panicked while holding it poisoned nothing we rely on.
            *hold = Some(WGPU.lock().unwrap_or_else(|e| e.into_inner()));
        }
    });
    if std::env::var_os("ATTENTION_LAB_SKIP_WGPU").is_some() {
        eprintln!("ATTENTION_LAB_SKIP_WGPU is set: skipping the wgpu backend");
        return None;
    }
    let device = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    let probe = device.clone();
    // burn acquires the adapter lazily and panics on its own thread when there is none.
    let works = primary_adapter()
        && std::thread::spawn(move || {
            Tensor::<1>::ones([1], &probe)
                .into_data()
                .try_into_vec_as::<f32>()
        })
        .join()
        .is_ok_and(|values| values.is_ok_and(|v| v == [1.0]));
    match (works, std::env::var_os("CI").is_some()) {
        (true, _) => Some(device),
        (false, true) => panic!(
            "CI must test wgpu, but no graphics adapter answered: is mesa-vulkan-drivers installed?"
        ),
        (false, false) => {
            eprintln!(
                "no Vulkan, Metal or DX12 adapter: skipping the wgpu backend (apt-get install mesa-vulkan-drivers libvulkan1 to test it)"
            );
            None
        }
    }
}

/// Whether wgpu finds an adapter through Vulkan, Metal or DX12 (a GPU, or lavapipe). With
/// OpenGL alone (Mesa's llvmpipe without a Vulkan driver) cubecl falls back to GL, where the
/// one-op probe answers but the fused-op tests then wait forever (seen with
/// `VK_DRIVER_FILES=/nonexistent`).
fn primary_adapter() -> bool {
    use burn::tensor::wgpu::wgpu;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::PRIMARY,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let mut adapters = std::pin::pin!(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    // Native backends answer at the first poll; no executor needed.
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(adapters) = adapters.as_mut().poll(&mut context) {
            return !adapters.is_empty();
        }
        std::thread::yield_now();
    }
}

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The reference attention cases (every `*.json` at the top of `fixtures/` except the positional
/// tables; other fixtures, such as `sdpa/`, live in subfolders).
pub fn attention_cases() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_path(""))
        .expect("fixture folder")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json") && !n.starts_with("pe_"))
        .map(|n| n.trim_end_matches(".json").to_string())
        .collect();
    names.sort();
    assert!(
        names.len() >= 6,
        "expected the reference cases, found {names:?}"
    );
    names
}

pub fn load_json(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_path(name)).expect("fixture");
    serde_json::from_str(&text).expect("fixture JSON")
}

/// Flattens a nested JSON array of numbers, returning values and shape.
pub fn flatten(value: &Value) -> (Vec<f32>, Vec<usize>) {
    fn walk(v: &Value, depth: usize, out: &mut Vec<f32>, shape: &mut Vec<usize>) {
        match v {
            Value::Array(items) => {
                if shape.len() == depth {
                    shape.push(items.len());
                }
                for item in items {
                    walk(item, depth + 1, out, shape);
                }
            }
            Value::Number(n) => out.push(n.as_f64().unwrap() as f32),
            other => panic!("not a number: {other}"),
        }
    }
    let (mut out, mut shape) = (Vec::new(), Vec::new());
    walk(value, 0, &mut out, &mut shape);
    (out, shape)
}

pub fn tensor<const D: usize>(value: &Value, device: &Device) -> Tensor<D> {
    let (values, shape) = flatten(value);
    Tensor::from_data(TensorData::new(values, shape), device)
}

pub fn max_abs_diff(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len(), "length");
    actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).abs())
        .fold(0.0, f32::max)
}

/// Asserts `got` is within `tolerance` of `want` relative to the largest of `want`'s values (at
/// least 1): f32 against a float64 reference, whose values span orders of magnitude.
pub fn assert_relative(what: &str, got: &[f32], want: &[f32], tolerance: f32) {
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    let diff = max_abs_diff(got, want) / scale;
    assert!(diff < tolerance, "{what}: {diff:.2e} relative");
}

pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

/// The case whose `.safetensors` holds a case's projection weights: its own, or for the
/// `positions_*` cases the base case named by `weights_from`.
pub fn weights_file(json: &Value) -> String {
    json.get("weights_from")
        .or_else(|| json.get("name"))
        .and_then(Value::as_str)
        .expect("a case names itself")
        .to_string()
}

/// A case's positions inside attention (none when the JSON has no `positions`).
pub fn positions(json: &Value) -> AttentionPositions {
    let number = |key: &str| json[key].as_u64().unwrap() as usize;
    match json["kind"].as_str() {
        None | Some("none") => AttentionPositions::None,
        Some("rope") => AttentionPositions::Rope {
            base: json["base"].as_f64().unwrap(),
        },
        Some("alibi") => AttentionPositions::Alibi,
        Some("relative") => AttentionPositions::Relative {
            num_buckets: number("num_buckets"),
            max_distance: number("max_distance"),
            bidirectional: json["bidirectional"].as_bool().unwrap(),
        },
        Some(other) => panic!("unknown positions kind {other}"),
    }
}

/// A reference case, ready to run on `device`.
pub struct Case {
    pub name: String,
    pub json: Value,
    pub module: MultiHeadAttention,
    pub input: AttentionInput,
}

impl Case {
    pub fn load(name: &str, device: &Device) -> Self {
        let json = load_json(&format!("{name}.json"));
        let get = |k: &str| json[k].as_u64().unwrap() as usize;
        let mut module = MultiHeadAttentionConfig::new(get("d_model"), get("n_head"))
            .with_d_k(Some(get("d_k")))
            .with_d_v(Some(get("d_v")))
            .with_positions(positions(&json["positions"]))
            .init(device)
            .load_pytorch_safetensors(fixture_path(&format!(
                "{}.safetensors",
                weights_file(&json)
            )))
            .expect("reference weights load");
        if let Some(relative) = module.positions.relative.as_mut() {
            let table = tensor::<2>(&json["positions"]["table"], device);
            relative.embedding.weight = burn::module::Param::from_tensor(table);
        }
        let q = tensor::<3>(&json["q"], device);
        let k = tensor::<3>(&json["k"], device);
        let v = tensor::<3>(&json["v"], device);
        let offset = |key: &str| json[key].as_u64().unwrap_or(0) as usize;
        let mut input =
            AttentionInput::new(q, k, v).offsets(offset("query_offset"), offset("key_offset"));
        if !json["mask"].is_null() {
            // The reference marks keys to attend with 1; burn masks with `true`.
            let attend = tensor::<3>(&json["mask"], device);
            input = input.mask_attention(attend.equal_elem(0.0));
        }
        Self {
            name: name.to_string(),
            json,
            module,
            input,
        }
    }

    pub fn expected_output(&self) -> Vec<f32> {
        flatten(&self.json["output"]).0
    }

    pub fn expected_weights(&self) -> Vec<f32> {
        flatten(&self.json["attn"]).0
    }
}
