//! Turning a [`Backend`] name into a burn [`Device`], with clear errors.

use anyhow::Result;
use burn::prelude::*;

use crate::config::Backend;

/// The device for `backend`, checked to work.
///
/// GPU backends are checked by running one small operation: burn 0.22.1 acquires the adapter
/// lazily and panics on a worker thread when there is none, so without this check a machine with
/// no graphics driver would fail deep inside training.
pub fn device(backend: Backend) -> Result<Device> {
    match backend {
        Backend::Flex => flex(),
        Backend::Ndarray => ndarray(),
        Backend::Wgpu => wgpu(),
        Backend::Cuda => cuda(),
    }
}

/// `n` devices of `backend` for data-parallel training: on a CPU backend, `n` workers sharing
/// the processor (each thread trains on its own part of every batch); on a GPU backend, the
/// first `n` discrete GPUs, each checked like [`device`].
pub fn devices(backend: Backend, n: usize) -> Result<Vec<Device>> {
    anyhow::ensure!(n >= 1, "--devices must be at least 1");
    let first = device(backend)?;
    if n == 1 || matches!(backend, Backend::Flex | Backend::Ndarray) {
        return Ok(vec![first; n]);
    }
    (0..n).map(|i| gpu(backend, i)).collect()
}

#[cfg(feature = "wgpu")]
fn wgpu_gpu(index: usize) -> Option<Device> {
    let device = Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(index));
    answers(&device, "wgpu-probe").then_some(device)
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_gpu(_index: usize) -> Option<Device> {
    None
}

#[cfg(feature = "cuda")]
fn cuda_gpu(index: usize) -> Option<Device> {
    let device = Device::cuda(index);
    answers(&device, "cuda-probe").then_some(device)
}

#[cfg(not(feature = "cuda"))]
fn cuda_gpu(_index: usize) -> Option<Device> {
    None
}

fn gpu(backend: Backend, index: usize) -> Result<Device> {
    let found = match backend {
        Backend::Wgpu => wgpu_gpu(index),
        _ => cuda_gpu(index),
    };
    found.ok_or_else(|| {
        anyhow::anyhow!(
            "--devices asks for GPU {index} of --backend {backend}, and there is none; pass --devices {index} or fewer"
        )
    })
}

#[cfg_attr(
    all(
        feature = "flex",
        feature = "ndarray",
        feature = "wgpu",
        feature = "cuda"
    ),
    allow(dead_code)
)]
fn not_compiled(name: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "backend `{name}` is not compiled into this binary; rebuild with `--features {name}` or pick another --backend"
    )
}

#[cfg(feature = "flex")]
fn flex() -> Result<Device> {
    Ok(Device::flex())
}

#[cfg(not(feature = "flex"))]
fn flex() -> Result<Device> {
    Err(not_compiled("flex"))
}

#[cfg(feature = "ndarray")]
#[allow(deprecated)] // deprecated upstream in burn 0.22, still shipped; kept for comparison
fn ndarray() -> Result<Device> {
    Ok(Device::ndarray())
}

#[cfg(not(feature = "ndarray"))]
fn ndarray() -> Result<Device> {
    Err(not_compiled("ndarray"))
}

#[cfg(feature = "wgpu")]
fn wgpu() -> Result<Device> {
    let device = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    if answers(&device, "wgpu-probe") {
        return Ok(device);
    }
    anyhow::bail!(
        "--backend wgpu found no usable graphics adapter; install a Vulkan driver \
         (on Debian/Ubuntu: `apt-get install mesa-vulkan-drivers libvulkan1`) or pick --backend flex"
    )
}

/// Whether `device` computes one small operation. GPU runtimes start lazily and panic on their
/// own threads when no driver is present, so the probe runs on a thread with the panic message
/// kept off the terminal.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn answers(device: &Device, thread: &str) -> bool {
    let probe = device.clone();
    let outcome = silently(|| {
        std::thread::Builder::new()
            .name(thread.into())
            .spawn(move || {
                Tensor::<1>::ones([1], &probe)
                    .into_data()
                    .try_into_vec_as::<f32>()
            })
            .map(|handle| handle.join())
    });
    matches!(outcome, Ok(Ok(Ok(values))) if values == [1.0])
}

/// Runs `f` with panic messages kept off the terminal, for calls whose panics are caught and
/// turned into one-line errors (burn reports a missing driver or a mismatched record by
/// panicking).
pub(crate) fn silently<R>(f: impl FnOnce() -> R) -> R {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = f();
    std::panic::set_hook(hook);
    result
}

#[cfg(not(feature = "wgpu"))]
fn wgpu() -> Result<Device> {
    Err(not_compiled("wgpu"))
}

#[cfg(feature = "cuda")]
fn cuda() -> Result<Device> {
    let device = Device::cuda(0);
    if answers(&device, "cuda-probe") {
        return Ok(device);
    }
    anyhow::bail!(
        "--backend cuda found no usable NVIDIA GPU (it needs libcuda and NVRTC); pick --backend flex"
    )
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<Device> {
    Err(not_compiled("cuda"))
}
