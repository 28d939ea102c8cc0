//! Moving weights between this crate's [`MultiHeadAttention`] and the reference PyTorch module.
//!
//! The reference module's `state_dict` names its projections `w_qs`, `w_ks`, `w_vs` and `fc`, and
//! stores `nn.Linear` weights as `[out, in]`; burn's `Linear` stores `[in, out]`, so every weight
//! is transposed on the way in and out.

use std::path::Path;

use burn::{module::Param, nn::Linear, prelude::*};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::{AttentionError, MultiHeadAttention};

/// PyTorch names of the four projections, in the order `w_q`, `w_k`, `w_v`, `w_o`.
const NAMES: [&str; 4] = ["w_qs", "w_ks", "w_vs", "fc"];

impl MultiHeadAttention {
    /// Loads the weights of the reference PyTorch `MultiHeadAttention`, saved with
    /// `safetensors.torch.save_file(module.state_dict(), path)`.
    ///
    /// Reads `w_qs.weight`, `w_ks.weight`, `w_vs.weight`, `fc.weight` (and `.bias` when this
    /// module has biases) as f32 or f64 in PyTorch's `[out, in]` layout. Other entries,
    /// such as the reference's `layer_norm.*`, are ignored: that layer lives outside this module.
    /// A missing entry, a shape that does not fit, or a bias present on one side only is an error
    /// naming the file and the entry.
    pub fn load_pytorch_safetensors(
        mut self,
        path: impl AsRef<Path>,
    ) -> Result<Self, AttentionError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| AttentionError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let weights_err = |reason: String| AttentionError::Weights {
            path: path.display().to_string(),
            reason,
        };
        let file = SafeTensors::deserialize(&bytes)
            .map_err(|e| weights_err(format!("not a safetensors file: {e}")))?;
        self.reference_layout().map_err(&weights_err)?;
        let device = self.w_q.weight.device();
        for name in NAMES {
            let linear = self.projection_mut(name);
            let [d_in, d_out] = linear.weight.dims();
            let weight = read_tensor(&file, &format!("{name}.weight"), &[d_out, d_in], &device)
                .map_err(&weights_err)?;
            linear.weight = Param::from_tensor(weight.reshape([d_out, d_in]).transpose());
            let bias_name = format!("{name}.bias");
            let has_bias = file.names().iter().any(|n| **n == bias_name);
            match (linear.bias.is_some(), has_bias) {
                (true, true) => {
                    let bias =
                        read_tensor(&file, &bias_name, &[d_out], &device).map_err(&weights_err)?;
                    linear.bias = Some(Param::from_tensor(bias.reshape([d_out])));
                }
                (false, false) => {}
                (true, false) => {
                    return Err(weights_err(format!(
                        "no `{bias_name}`, but the module was built with bias = true"
                    )));
                }
                (false, true) => {
                    return Err(weights_err(format!(
                        "has `{bias_name}`, but the module was built with bias = false"
                    )));
                }
            }
        }
        Ok(self)
    }

    /// Saves the projections as the reference PyTorch module names and lays them out (f32,
    /// `[out, in]`), loadable with `module.load_state_dict(safetensors.torch.load_file(path),
    /// strict=False)`.
    pub fn save_pytorch_safetensors(&self, path: impl AsRef<Path>) -> Result<(), AttentionError> {
        let path = path.as_ref();
        self.reference_layout()
            .map_err(|reason| AttentionError::Weights {
                path: path.display().to_string(),
                reason,
            })?;
        let mut entries: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for name in NAMES {
            let linear = self.projection(name);
            let [d_in, d_out] = linear.weight.dims();
            entries.push((
                format!("{name}.weight"),
                vec![d_out, d_in],
                f32_bytes(linear.weight.val().transpose().into_data()),
            ));
            if let Some(bias) = &linear.bias {
                entries.push((
                    format!("{name}.bias"),
                    vec![d_out],
                    f32_bytes(bias.val().into_data()),
                ));
            }
        }
        let views = entries.iter().map(|(name, shape, data)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), data)
                .expect("shape matches data length");
            (name.clone(), view)
        });
        safetensors::serialize_to_file(views, &None, path).map_err(|e| AttentionError::Weights {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Whether the reference module can hold this one: it has the four projections only, so
    /// trained sinks or qk-norm scales would be lost on the way.
    fn reference_layout(&self) -> Result<(), String> {
        let extra = [
            (self.sinks.is_some(), "learned sinks"),
            (self.q_norm.is_some(), "qk-norm scales"),
        ];
        match extra.iter().find(|(has, _)| *has) {
            Some((_, what)) => Err(format!(
                "this module has {what}, which the reference PyTorch module has no place for"
            )),
            None => Ok(()),
        }
    }

    fn projection(&self, name: &str) -> &Linear {
        match name {
            "w_qs" => &self.w_q,
            "w_ks" => &self.w_k,
            "w_vs" => &self.w_v,
            _ => &self.w_o,
        }
    }

    fn projection_mut(&mut self, name: &str) -> &mut Linear {
        match name {
            "w_qs" => &mut self.w_q,
            "w_ks" => &mut self.w_k,
            "w_vs" => &mut self.w_v,
            _ => &mut self.w_o,
        }
    }
}

/// Reads `name` (f32, f64, f16 or bf16) as a flat f32 tensor after checking its shape.
pub(crate) fn read_tensor(
    file: &SafeTensors,
    name: &str,
    shape: &[usize],
    device: &Device,
) -> Result<Tensor<1>, String> {
    let view = file.tensor(name).map_err(|_| format!("missing `{name}`"))?;
    if view.shape() != shape {
        return Err(format!(
            "`{name}` has shape {:?}, the module needs {shape:?} (PyTorch [out, in])",
            view.shape()
        ));
    }
    let data = view.data();
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| burn::tensor::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| burn::tensor::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => {
            return Err(format!(
                "`{name}` is {other:?}; only F32, F64, F16 and BF16 are read"
            ));
        }
    };
    let len = values.len();
    Ok(Tensor::from_data(TensorData::new(values, [len]), device))
}

fn f32_bytes(data: TensorData) -> Vec<u8> {
    let values = data.try_into_vec_as::<f32>().expect("float tensor");
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
