//! Self-attention building blocks for [burn](https://burn.dev) 0.22.
//!
//! Every item here is an ordinary burn [`Module`](burn::module::Module) built from a
//! `#[derive(Config)]` config with `init(&device)`; none of them names a backend, so they run on
//! whatever [`Device`](burn::tensor::Device) their tensors live on (flex, ndarray, wgpu, cuda, …)
//! and train through `device.autodiff()` like any burn layer.
//!
//! | module | what it computes |
//! |---|---|
//! | [`ScaledDotProductAttention`] | `softmax(q·kᵀ / temperature)·v` on `[b, h, l, d]` tensors, with masks and dropout |
//! | [`SingleHeadSelfAttention`] | one head with free `d_k`, `d_v` (a one-head [`MultiHeadAttention`], weights without the head axis): the seed experiment's baseline |
//! | [`MultiHeadAttention`] | `n_heads` heads with free `d_k`, `d_v`; self- and cross-attention; per-head weights |
//! | [`SinusoidalPositionalEncoding`] | adds the fixed sin/cos table of *Attention Is All You Need* |
//!
//! # Masks
//!
//! All masks follow burn's polarity: **`true` means masked** (the key is *not* attended to).
//! [`mask`] builds padding masks from lengths or token ids and causal masks. A query whose keys
//! are all masked gets all-zero attention weights and a zero context row, never NaN.
//!
//! # PyTorch weights
//!
//! [`MultiHeadAttention::load_pytorch_safetensors`] reads a state dict exported with
//! `safetensors.torch.save_file(mha.state_dict(), path)` from the reference PyTorch module
//! (`w_qs.weight`, `w_ks.weight`, `w_vs.weight`, `fc.weight`), and
//! [`MultiHeadAttention::save_pytorch_safetensors`] writes it back in the same layout.
//!
//! # Example: the modules inside your own model
//!
//! ```
//! use attention::{
//!     AttentionInput, MultiHeadAttention, MultiHeadAttentionConfig, SinusoidalPositionalEncoding,
//!     SinusoidalPositionalEncodingConfig, mask,
//! };
//! use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
//! use burn::prelude::*;
//!
//! #[derive(Module, Debug)]
//! struct TinyClassifier {
//!     embedding: Embedding,
//!     positions: SinusoidalPositionalEncoding,
//!     attention: MultiHeadAttention,
//!     head: Linear,
//! }
//!
//! impl TinyClassifier {
//!     fn new(vocab: usize, d_model: usize, classes: usize, device: &Device) -> Self {
//!         Self {
//!             embedding: EmbeddingConfig::new(vocab, d_model).init(device),
//!             positions: SinusoidalPositionalEncodingConfig::new(d_model).init(device),
//!             attention: MultiHeadAttentionConfig::new(d_model, 4).init(device),
//!             head: LinearConfig::new(d_model, classes).init(device),
//!         }
//!     }
//!
//!     /// `tokens` `[b, l]` → logits `[b, classes]`.
//!     fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<2> {
//!         let padding = mask::padding_mask_from_tokens(tokens.clone(), 0); // [b, l], true = pad
//!         let x = self.positions.forward(self.embedding.forward(tokens));
//!         let out = self.attention.forward(AttentionInput::self_attention(x).mask_padding(padding));
//!         let [b, _, d] = out.context.dims();
//!         self.head.forward(out.context.mean_dim(1).reshape([b, d]))
//!     }
//! }
//!
//! let device = Device::flex();
//! let model = TinyClassifier::new(100, 16, 3, &device);
//! let tokens = Tensor::<2, Int>::from_data([[5, 6, 7, 0], [8, 9, 0, 0]], &device);
//! assert_eq!(model.forward(tokens).dims(), [2, 3]);
//! ```

mod cache;
mod encoder;
mod error;
mod heads;
mod learned;
pub mod mask;
mod multi_head;
mod positional;
mod positions;
mod pytorch;
mod scaled_dot_product;
mod single_head;

pub use cache::KvCache;
pub use encoder::{
    Encoder, EncoderConfig, EncoderInput, EncoderLayer, EncoderLayerConfig, EncoderOutput,
    FeedForward,
};
pub use error::AttentionError;
pub use heads::{head_entropy, head_importance};
pub use learned::{LearnedPositionalEmbedding, LearnedPositionalEmbeddingConfig};
pub use multi_head::{
    AttentionInput, MultiHeadAttention, MultiHeadAttentionConfig, MultiHeadOutput,
};
pub use positional::{
    SinusoidalPositionalEncoding, SinusoidalPositionalEncodingConfig, sinusoid_table,
};
pub use positions::{
    AlibiBias, AttentionPositions, PositionsInAttention, RelativePositionBias, RotaryPositions,
    alibi_slopes, relative_position_bucket,
};
pub use scaled_dot_product::{
    AttentionOutput, ScaledDotProductAttention, ScaledDotProductAttentionConfig,
};
pub use single_head::{SingleHeadOutput, SingleHeadSelfAttention, SingleHeadSelfAttentionConfig};
