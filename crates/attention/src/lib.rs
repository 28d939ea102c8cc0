//! Self-attention building blocks for [burn](https://burn.dev) 0.22.
//!
//! Every item here is an ordinary burn [`Module`](burn::module::Module) built from a
//! `#[derive(Config)]` config with `init(&device)`; none of them names a backend, so they run on
//! whatever [`Device`](burn::tensor::Device) their tensors live on (flex, ndarray, wgpu, cuda, …)
//! and train through `device.autodiff()` like any burn layer.
//!
//! | module | what it computes |
//! |---|---|
//! | [`ScaledDotProductAttention`] | `softmax(q·kᵀ / temperature + bias)·v` on `[b, h, l, d]` tensors, with masks and dropout |
//! | [`SingleHeadSelfAttention`] | one head with free `d_k`, `d_v` (a one-head [`MultiHeadAttention`], weights without the head axis): the seed experiment's baseline |
//! | [`MultiHeadAttention`] | `n_heads` heads with free `d_k`, `d_v`; self- and cross-attention; per-head weights; positions inside attention ([`AttentionPositions`]); grouped-query / multi-query attention (`n_kv_heads`); head gates; [`prune_heads`](MultiHeadAttention::prune_heads); [`forward_cached`](MultiHeadAttention::forward_cached) with a [`KvCache`] (or StreamingLLM's, [`KvCache::streaming`]); local attention, soft-capping, qk-norm and learned sinks (`window`, `softcap`, `qk_norm`: [`QkNorm`], `sinks`) |
//! | [`SinusoidalPositionalEncoding`] | adds the fixed sin/cos table of *Attention Is All You Need* |
//! | [`LearnedPositionalEmbedding`] | adds a trained vector per position (BERT, GPT-2), with offsets |
//! | [`RotaryPositions`], [`AlibiBias`], [`RelativePositionBias`] | RoPE, ALiBi and T5's relative bias, used by [`MultiHeadAttention`] or on their own |
//! | [`LayerNorm`] | burn's LayerNorm (same parameters and records) trained through [`fused::layer_norm`], one op with its own backward |
//! | [`BertModel`] | BERT-family encoders (BERT, MiniLM) built from an HF `config.json`, weights from its `model.safetensors` ([`BertModel::from_pretrained`]) |
//! | [`DifferentialAttention`] | differential attention (Ye et al., 2024; HF's `DiffLlama` layout): two softmax maps per head pair, the second scaled by a learned `λ` and subtracted, an RMSNorm per pair |
//! | [`TalkingHeadsAttention`] | talking heads (Shazeer et al., 2020): the heads' scores mixed by a learned `[heads, heads]` matrix before the softmax and their weights by another after it (the decomposition) |
//! | [`EncoderLayer`], [`Encoder`] | pre-LN or post-LN layers (attention, optional feed-forward), a stack returning every layer's weights |
//! | [`head_importance`], [`head_entropy`] | which heads matter: `|∂loss/∂gate|` (Michel et al., 2019) and attention entropy |
//! | [`fused::gelu`], [`fused::dropout`] | exact GELU (a vectorised `erf`) and dropout (a hashed mask regenerated in the backward), one op each with its own backward on flex; what [`EncoderLayer`] trains through |
//! | [`fused::FusedAdamW`] | burn's AdamW (same numbers, same state and records) in one `rayon` pass per parameter on flex; burn's own elsewhere |
//! | [`mask_mod`] | attention patterns as code: closures `(batch, head, q, kv) → allowed` with `and`/`or`/`not`, causal, sliding windows, prefix-LM, packed documents, padding; the mask tensor of any of them, and a shape's tiles sorted into empty, full and partial ([`mask_mod::BlockMask`]) |
//! | [`score_mod`], [`AttentionPattern`], [`fused::pattern_attention`] | score biases as code (closures `(batch, head, q, kv) → bias`, ALiBi, T5's table) and soft-capping; a pattern (block mask, score mod, cap, learned sinks) through the fused op: on flex the kernels skip empty tiles forward and backward and add the score mod row by row, elsewhere the pattern's tensors, cached per shape |
//! | [`fused::fused_attention`] | attention as one op with its own backward (FlashAttention-2): trains with memory growing in `l`, not `l²`; what [`MultiHeadAttention::forward_context`] trains through ([`fused::fused_attention_dropout`]: attention dropout inside the op on flex, the mask regenerated in the backward from a counter-based hash) |
//!
//! # Masks
//!
//! All masks follow burn's polarity: **`true` means masked** (the key is *not* attended to).
//! [`mask`] builds padding masks from lengths or token ids, causal masks and document masks
//! (texts packed into one row); [`mask_mod`]
//! describes patterns as code (closures `(batch, head, q, kv) → allowed`, combinators, sliding
//! windows, prefix-LM, packed documents) and sorts a shape's tiles into empty, full and partial
//! ([`mask_mod::BlockMask`]). A query whose keys
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

//! # Example: a small decoder with RoPE, grouped-query attention and a KV cache
//!
//! ```
//! use attention::{AttentionInput, AttentionPositions, KvCache, MultiHeadAttention, MultiHeadAttentionConfig, mask};
//! use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
//! use burn::prelude::*;
//!
//! #[derive(Module, Debug)]
//! struct TinyDecoder {
//!     embedding: Embedding,
//!     attention: MultiHeadAttention,
//!     head: Linear,
//! }
//!
//! impl TinyDecoder {
//!     fn new(vocab: usize, d_model: usize, device: &Device) -> Self {
//!         Self {
//!             embedding: EmbeddingConfig::new(vocab, d_model).init(device),
//!             // 4 query heads sharing 2 key/value heads; positions rotate q and k.
//!             attention: MultiHeadAttentionConfig::new(d_model, 4)
//!                 .with_n_kv_heads(Some(2))
//!                 .with_positions(AttentionPositions::rope())
//!                 .init(device),
//!             head: LinearConfig::new(d_model, vocab).init(device),
//!         }
//!     }
//!
//!     /// Training: the whole sequence with a causal mask. `tokens` `[b, l]` → logits `[b, l, vocab]`.
//!     fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
//!         let [b, l] = tokens.dims();
//!         let x = self.embedding.forward(tokens);
//!         let causal = mask::causal_mask(b, l, &x.device());
//!         let out = self.attention.forward(AttentionInput::self_attention(x).mask_attention(causal));
//!         self.head.forward(out.context)
//!     }
//!
//!     /// Generation: only the new tokens, the earlier ones' keys and values in `cache`.
//!     fn step(&self, tokens: Tensor<2, Int>, cache: &mut KvCache) -> Tensor<3> {
//!         let x = self.embedding.forward(tokens);
//!         self.head.forward(self.attention.forward_cached(x, cache).context)
//!     }
//! }
//!
//! let device = Device::flex();
//! let model = TinyDecoder::new(50, 16, &device);
//! let tokens = Tensor::<2, Int>::from_data([[3, 7, 9, 4]], &device);
//! let full = model.forward(tokens.clone());
//! let mut cache = KvCache::new();
//! model.step(tokens.clone().narrow(1, 0, 3), &mut cache); // the prompt
//! let last = model.step(tokens.narrow(1, 3, 1), &mut cache); // one more token
//! let diff = (full.narrow(1, 3, 1) - last).abs().max().into_scalar::<f32>();
//! assert!(diff < 1e-5); // the same logits as the full pass
//! ```
//!
//! # Example: which heads matter
//!
//! ```
//! use attention::{AttentionInput, MultiHeadAttentionConfig, head_entropy, head_importance};
//! use burn::prelude::*;
//!
//! let device = Device::flex().autodiff();
//! let mha = MultiHeadAttentionConfig::new(16, 4).init(&device);
//! let x = Tensor::<3>::random([8, 10, 16], burn::tensor::Distribution::Default, &device);
//! let target = Tensor::<3>::zeros([8, 10, 16], &device);
//! // Importance: how much the loss moves when a head's gate moves (Michel et al., 2019).
//! let importance = head_importance(4, &device, |gates| {
//!     let out = mha.forward(AttentionInput::self_attention(x.clone()).head_gates(gates));
//!     (out.context - target.clone()).powi_scalar(2).mean()
//! });
//! let least = (0..4).min_by(|&a, &b| importance[a].total_cmp(&importance[b])).unwrap();
//! // Remove it: a smaller module equal to the gated one.
//! let pruned = mha.prune_heads(&[least]).unwrap();
//! assert_eq!(pruned.n_heads, 3);
//! // Entropy of each head's attention, in nats (ln 10 would be uniform over 10 keys).
//! let weights = mha.forward(AttentionInput::self_attention(x)).weights;
//! assert_eq!(head_entropy(weights).dims(), [4]);
//! ```

mod bert;
mod cache;
mod differential;
mod encoder;
mod error;
pub mod fused;
mod heads;
mod learned;
pub mod mask;
pub mod mask_mod;
mod multi_head;
mod norm;
mod pattern;
mod positional;
mod positions;
mod pytorch;
mod recent;
mod scaled_dot_product;
pub mod score_mod;
mod single_head;
mod talking_heads;

pub use bert::{BertConfig, BertEmbeddings, BertInput, BertModel, BertOutput};
pub use cache::KvCache;
pub use differential::{DifferentialAttention, DifferentialAttentionConfig, lambda_init_for_layer};
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
pub use norm::{LayerNorm, LayerNormConfig, QkNorm, QkNormLayer};
pub use pattern::AttentionPattern;
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
pub use talking_heads::{TalkingHeadsAttention, TalkingHeadsAttentionConfig};
