//! Multi-head attention with free per-head key and value widths.

use std::sync::Arc;

use burn::{
    module::Param,
    nn::{Initializer, Linear, LinearConfig},
    prelude::*,
};

use crate::{
    AttentionError, AttentionPattern, AttentionPositions, PositionsInAttention, QkNorm,
    QkNormLayer, ScaledDotProductAttention, ScaledDotProductAttentionConfig,
    fused::pattern_kernels, mask::to_scores_mask, mask_mod::Band, recent::Recent,
};

/// Configuration of [`MultiHeadAttention`].
#[derive(Config, Debug)]
pub struct MultiHeadAttentionConfig {
    /// Width of the inputs and of the output.
    pub d_model: usize,
    /// Number of heads.
    pub n_heads: usize,
    /// Query and key width of each head. Default: `None`, meaning `d_model / n_heads`.
    pub d_k: Option<usize>,
    /// Value width of each head. Default: `None`, meaning `d_model / n_heads`.
    pub d_v: Option<usize>,
    /// Key/value heads: fewer than `n_heads` (dividing it) is grouped-query attention, 1 is
    /// multi-query attention; consecutive groups of `n_heads / n_kv_heads` query heads share
    /// one key/value head (as HF transformers' `repeat_kv`). Default: `None`, `n_heads`.
    pub n_kv_heads: Option<usize>,
    /// Dropout probability on the attention weights. Default: `0.0`.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Whether the four projections have a bias. Default: `false`, as in the reference code.
    #[config(default = false)]
    pub bias: bool,
    /// Score divisor. Default: `None`, meaning `sqrt(d_k)`.
    pub temperature: Option<f64>,
    /// Initializer of the projection weights. Default: burn's `Linear` default, `U(±1/sqrt(d_in))`,
    /// which is also PyTorch's `nn.Linear` default (gain `1/sqrt(3)`).
    #[config(
        default = "Initializer::KaimingUniform{gain: 0.577_350_269_189_625_8, fan_out_only: false}"
    )]
    pub initializer: Initializer,
    /// Positions inside attention: RoPE on q and k, or an ALiBi or T5 relative score bias.
    /// Default: [`AttentionPositions::None`].
    #[config(default = "AttentionPositions::None")]
    pub positions: AttentionPositions,
    /// Local attention: query `i` sees only keys `j` with `|i − j| ≤ window` (positions, so
    /// offsets and a KV cache count; Longformer's local attention; with a causal mask,
    /// Mistral's `sliding_window = W` is `window = W − 1`). On flex the fused kernels skip the tiles outside it, so time grows
    /// with `l · window`. Default: `None`, every key.
    pub window: Option<usize>,
    /// Soft-capping of the scaled scores to `(-cap, cap)`: `cap · tanh(s / cap)` before the
    /// bias and the masks (Gemma 2's `attn_logit_softcapping`). Default: `None`.
    pub softcap: Option<f64>,
    /// Normalisation of each head's queries and keys before RoPE and the scores (qk-norm:
    /// Qwen3's RMSNorm, or LayerNorm). Default: `None`.
    pub qk_norm: Option<QkNorm>,
    /// Learned attention sinks (gpt-oss): a trained logit per head that joins each row's
    /// softmax without a value, so a head can give a query less than all of its attention
    /// ([`AttentionPattern::with_sinks`]). Initialised at 0. Default: `false`.
    #[config(default = false)]
    pub sinks: bool,
}

impl MultiHeadAttentionConfig {
    /// The per-head `(d_k, d_v)` this config resolves to.
    pub fn head_dims(&self) -> Result<(usize, usize), AttentionError> {
        if self.d_model == 0 {
            return Err(AttentionError::config("d_model", "must be at least 1"));
        }
        if self.n_heads == 0 {
            return Err(AttentionError::config("n_heads", "must be at least 1"));
        }
        let derived = || {
            if self.d_model.is_multiple_of(self.n_heads) {
                Ok(self.d_model / self.n_heads)
            } else {
                Err(AttentionError::config(
                    "n_heads",
                    format!(
                        "{} heads do not divide d_model = {}; choose a divisor or set d_k and d_v explicitly",
                        self.n_heads, self.d_model
                    ),
                ))
            }
        };
        let d_k = self.d_k.map_or_else(derived, Ok)?;
        let d_v = self.d_v.map_or_else(derived, Ok)?;
        if d_k == 0 || d_v == 0 {
            return Err(AttentionError::config("d_k/d_v", "must be at least 1"));
        }
        let kv = self.kv_heads();
        if kv == 0 || !self.n_heads.is_multiple_of(kv) {
            return Err(AttentionError::config(
                "n_kv_heads",
                format!(
                    "{kv} key/value heads do not divide {} heads; choose a divisor",
                    self.n_heads
                ),
            ));
        }
        Ok((d_k, d_v))
    }

    /// The key/value heads this config resolves to.
    pub fn kv_heads(&self) -> usize {
        self.n_kv_heads.unwrap_or(self.n_heads)
    }

    /// Checks the values without building anything.
    pub fn validate(&self) -> Result<(), AttentionError> {
        let (d_k, _) = self.head_dims()?;
        if let Some(eps) = self.qk_norm.as_ref().map(QkNorm::epsilon)
            && !(eps > 0.0 && eps.is_finite())
        {
            return Err(AttentionError::config(
                "qk_norm",
                format!("epsilon must be positive and finite, got {eps}"),
            ));
        }
        if let Some(cap) = self.softcap
            && !(cap > 0.0 && cap.is_finite())
        {
            return Err(AttentionError::config(
                "softcap",
                format!("must be positive and finite, got {cap}"),
            ));
        }
        self.positions.validate(d_k)?;
        self.attention_config().validate()
    }

    fn attention_config(&self) -> ScaledDotProductAttentionConfig {
        ScaledDotProductAttentionConfig::new()
            .with_temperature(self.temperature)
            .with_dropout(self.dropout)
    }

    /// Builds the module on `device`.
    ///
    /// # Panics
    /// When [`validate`](Self::validate) fails; call it first to get the error as a value.
    pub fn init(&self, device: &Device) -> MultiHeadAttention {
        if let Err(err) = self.validate() {
            panic!("MultiHeadAttentionConfig: {err}");
        }
        let (d_k, d_v) = self.head_dims().expect("validated");
        let linear = |d_in, d_out| {
            LinearConfig::new(d_in, d_out)
                .with_bias(self.bias)
                .with_initializer(self.initializer.clone())
                .init(device)
        };
        MultiHeadAttention {
            w_q: linear(self.d_model, self.n_heads * d_k),
            w_k: linear(self.d_model, self.kv_heads() * d_k),
            w_v: linear(self.d_model, self.kv_heads() * d_v),
            w_o: linear(self.n_heads * d_v, self.d_model),
            attention: self.attention_config().init(),
            positions: PositionsInAttention::new(&self.positions, self.n_heads, device),
            d_model: self.d_model,
            n_heads: self.n_heads,
            n_kv_heads: self.kv_heads(),
            d_k,
            d_v,
            q_norm: self.qk_norm.as_ref().map(|n| n.init(d_k, device)),
            k_norm: self.qk_norm.as_ref().map(|n| n.init(d_k, device)),
            window: self.window,
            softcap: self.softcap,
            sinks: self
                .sinks
                .then(|| Param::from_tensor(Tensor::zeros([self.n_heads], device))),
            patterns: Arc::default(),
        }
    }
}

/// Multi-head attention: `w_o(concat_h(attention(x·w_q_h, x·w_k_h, x·w_v_h)))`.
///
/// ```
/// use attention::{AttentionInput, MultiHeadAttentionConfig, mask};
/// use burn::prelude::*;
///
/// let device = Device::flex();
/// let mha = MultiHeadAttentionConfig::new(16, 4).init(&device);
/// let x = Tensor::<3>::ones([2, 5, 16], &device);
/// let padding = mask::padding_mask_from_lengths(&[5, 3], 5, &device);
/// let out = mha.forward(AttentionInput::self_attention(x).mask_padding(padding));
/// assert_eq!(out.context.dims(), [2, 5, 16]);
/// assert_eq!(out.weights.dims(), [2, 4, 5, 5]); // [batch, heads, l_q, l_k]
/// assert_eq!(out.mean_weights().dims(), [2, 5, 5]);
/// ```
#[derive(Module, Debug)]
pub struct MultiHeadAttention {
    /// Query projection `d_model → n_heads·d_k`.
    pub w_q: Linear,
    /// Key projection `d_model → n_kv_heads·d_k`.
    pub w_k: Linear,
    /// Value projection `d_model → n_kv_heads·d_v`.
    pub w_v: Linear,
    /// Output projection `n_heads·d_v → d_model`.
    pub w_o: Linear,
    /// The per-head attention.
    pub attention: ScaledDotProductAttention,
    /// Positions inside attention (all `None` without them).
    pub positions: PositionsInAttention,
    /// Width of the inputs and outputs.
    pub d_model: usize,
    /// Number of heads.
    pub n_heads: usize,
    /// Key/value heads (`n_heads` unless grouped-query attention).
    pub n_kv_heads: usize,
    /// Query and key width per head.
    pub d_k: usize,
    /// Value width per head.
    pub d_v: usize,
    /// qk-norm of the queries ([`MultiHeadAttentionConfig::qk_norm`]).
    pub q_norm: Option<QkNormLayer>,
    /// qk-norm of the keys.
    pub k_norm: Option<QkNormLayer>,
    /// Local attention: keys within this many positions of the query
    /// ([`MultiHeadAttentionConfig::window`]).
    pub window: Option<usize>,
    /// Soft-cap of the scores ([`MultiHeadAttentionConfig::softcap`]).
    pub softcap: Option<f64>,
    /// Sink logits `[n_heads]` ([`MultiHeadAttentionConfig::sinks`]).
    pub sinks: Option<Param<Tensor<1>>>,
    /// The patterns of the window and soft-cap, kept per `(l_q, l_k, query_offset,
    /// key_offset, window, softcap)`: a few (a model sees a handful of lengths), shared by the
    /// module's clones.
    #[module(skip)]
    patterns: Arc<Recent<PatternKey, AttentionPattern, CACHED_PATTERNS>>,
}

/// `[l_q, l_k, query_offset, key_offset, window, softcap bits]`.
type PatternKey = [usize; 6];

/// Patterns a module keeps ([`MultiHeadAttention::pattern_for`]).
const CACHED_PATTERNS: usize = 8;

/// Query, key, value and masks for [`MultiHeadAttention`] and
/// [`SingleHeadSelfAttention`](crate::SingleHeadSelfAttention).
#[derive(Debug, Clone)]
pub struct AttentionInput {
    /// `[batch, l_q, d_model]`
    pub query: Tensor<3>,
    /// `[batch, l_k, d_model]`
    pub key: Tensor<3>,
    /// `[batch, l_k, d_model]`
    pub value: Tensor<3>,
    /// `[batch, l_k]`, `true` = padding key (masked).
    pub mask_padding: Option<Tensor<2, Bool>>,
    /// `[batch, l_q, l_k]`, `true` = masked; shared by all heads.
    pub mask_attention: Option<Tensor<3, Bool>>,
    /// Position of the first query, for positions inside attention. Default: 0.
    pub query_offset: usize,
    /// Position of the first key. Default: 0.
    pub key_offset: usize,
    /// `[n_heads]`: each head's context is multiplied by its gate before the heads are merged
    /// (0 removes a head; the gradient with respect to the gates is the heads' importance, see
    /// [`head_importance`](crate::head_importance)). Default: `None`, every gate 1.
    pub head_gates: Option<Tensor<1>>,
}

impl AttentionInput {
    /// Separate query, key and value.
    pub fn new(query: Tensor<3>, key: Tensor<3>, value: Tensor<3>) -> Self {
        Self {
            query,
            key,
            value,
            mask_padding: None,
            mask_attention: None,
            query_offset: 0,
            key_offset: 0,
            head_gates: None,
        }
    }

    /// Self-attention: `x` is query, key and value.
    pub fn self_attention(x: Tensor<3>) -> Self {
        Self::new(x.clone(), x.clone(), x)
    }

    /// Cross-attention: queries from `query`, keys and values from `context` (`l_q ≠ l_k` allowed).
    pub fn cross_attention(query: Tensor<3>, context: Tensor<3>) -> Self {
        Self::new(query, context.clone(), context)
    }

    /// Masks padding keys, `[batch, l_k]`, `true` = padding.
    pub fn mask_padding(mut self, mask: Tensor<2, Bool>) -> Self {
        self.mask_padding = Some(mask);
        self
    }

    /// Masks arbitrary (query, key) pairs, `[batch, l_q, l_k]`, `true` = masked.
    pub fn mask_attention(mut self, mask: Tensor<3, Bool>) -> Self {
        self.mask_attention = Some(mask);
        self
    }

    /// Positions of the first query and the first key (RoPE, ALiBi and relative bias use
    /// them): a decoder's new token at position `n` attending to a cache of `n + 1` keys is
    /// `offsets(n, 0)`.
    pub fn offsets(mut self, query: usize, key: usize) -> Self {
        self.query_offset = query;
        self.key_offset = key;
        self
    }

    /// Gates each head's contribution, `[n_heads]` (0 masks a head, 1 keeps it).
    pub fn head_gates(mut self, gates: Tensor<1>) -> Self {
        self.head_gates = Some(gates);
        self
    }

    /// Checks every shape against a module of width `d_model`.
    pub fn check(&self, d_model: usize) -> Result<(), AttentionError> {
        let [batch, l_q, dq] = self.query.dims();
        let [kb, l_k, dk] = self.key.dims();
        let shape_err = |what, expected: String, got: &[usize]| {
            Err(AttentionError::Shape {
                what,
                expected,
                got: got.to_vec(),
            })
        };
        if dq != d_model {
            return shape_err(
                "query",
                format!("[batch, l_q, {d_model}]"),
                &self.query.dims(),
            );
        }
        if kb != batch || dk != d_model {
            return shape_err(
                "key",
                format!("[{batch}, l_k, {d_model}]"),
                &self.key.dims(),
            );
        }
        if self.value.dims() != [batch, l_k, d_model] {
            return shape_err(
                "value",
                format!("[{batch}, {l_k}, {d_model}] like the key"),
                &self.value.dims(),
            );
        }
        if let Some(m) = &self.mask_padding
            && m.dims() != [batch, l_k]
        {
            return shape_err("padding mask", format!("[{batch}, {l_k}]"), &m.dims());
        }
        if let Some(m) = &self.mask_attention
            && m.dims() != [batch, l_q, l_k]
        {
            return shape_err(
                "attention mask",
                format!("[{batch}, {l_q}, {l_k}]"),
                &m.dims(),
            );
        }
        Ok(())
    }

    pub(crate) fn scores_mask(&self) -> Option<Tensor<4, Bool>> {
        to_scores_mask(self.mask_padding.clone(), self.mask_attention.clone())
    }
}

/// What [`MultiHeadAttention::forward`] returns.
#[derive(Debug, Clone)]
pub struct MultiHeadOutput {
    /// `[batch, l_q, d_model]`: the heads' contexts, concatenated and projected by `w_o` (burn's
    /// `MhaOutput::context`).
    pub context: Tensor<3>,
    /// Per-head attention weights `[batch, heads, l_q, l_k]`; masked keys get exactly 0.
    pub weights: Tensor<4>,
}

impl MultiHeadOutput {
    /// Weights averaged over heads, `[batch, l_q, l_k]`.
    pub fn mean_weights(&self) -> Tensor<3> {
        self.weights.clone().mean_dim(1).squeeze_dim(1)
    }
}

impl MultiHeadAttention {
    /// Attention with per-head weights.
    ///
    /// # Shapes
    /// - query `[batch, l_q, d_model]`, key and value `[batch, l_k, d_model]`
    /// - masks: padding `[batch, l_k]`, attention `[batch, l_q, l_k]` (`true` = masked)
    /// - output `[batch, l_q, d_model]`, weights `[batch, n_heads, l_q, l_k]`
    ///
    /// # Panics
    /// On shapes that do not fit (inside burn); [`try_forward`](Self::try_forward) checks first.
    pub fn forward(&self, input: AttentionInput) -> MultiHeadOutput {
        let [batch, l_q, _] = input.query.dims();
        let mask = input.scores_mask();
        let gates = input.head_gates.clone();
        let pattern = self.own_pattern(&input);
        let (q, k, v, bias) = self.project(input);
        let (k, v) = (self.repeat_kv(k), self.repeat_kv(v));
        let out = self
            .attention
            .forward_with_pattern(q, k, v, mask, bias, &pattern);
        MultiHeadOutput {
            context: self.merge_heads(out.context, gates, batch, l_q),
            weights: out.weights,
        }
    }

    /// [`forward`](Self::forward) after checking every shape, with a clear error instead of a
    /// panic inside burn.
    pub fn try_forward(&self, input: AttentionInput) -> Result<MultiHeadOutput, AttentionError> {
        input.check(self.d_model)?;
        if let Some(gates) = &input.head_gates
            && gates.dims() != [self.n_heads]
        {
            return Err(AttentionError::Shape {
                what: "head gates",
                expected: format!("[{}]", self.n_heads),
                got: gates.dims().to_vec(),
            });
        }
        Ok(self.forward(input))
    }

    /// The output alone, `[batch, l_q, d_model]`, never materialising the weights: while
    /// training through the fused op with its own backward ([`crate::fused`]), for inference
    /// through burn's fused kernel (see [`ScaledDotProductAttention::forward_context`]).
    pub fn forward_context(&self, input: AttentionInput) -> Tensor<3> {
        let [batch, l_q, _] = input.query.dims();
        let mask = input.scores_mask();
        let gates = input.head_gates.clone();
        let device = input.query.device();
        let pattern = self.own_pattern(&input);
        // Where the kernels read score mods (flex), ALiBi, and T5's table when it needs no
        // gradient, are added row by row inside them: no bias tensor at all.
        let score = pattern_kernels(&device, input.query.dtype())
            .then(|| {
                let trainable = device.is_autodiff();
                (self.positions).score_mod(input.query_offset, input.key_offset, trainable)
            })
            .flatten();
        let (q, k, v, bias, pattern) = match score {
            Some(score) => {
                let q = self.project_queries(input.query, input.query_offset);
                let (k, v) = self.project_keys_values(input.key, input.value, input.key_offset);
                (q, k, v, None, pattern.with_shared_score(score))
            }
            None => {
                let (q, k, v, bias) = self.project(input);
                (q, k, v, bias, pattern)
            }
        };
        let context = self
            .attention
            .forward_context_with_pattern(q, k, v, mask, bias, &pattern);
        self.merge_heads(context, gates, batch, l_q)
    }

    /// The module's window and soft-cap as a pattern for this input's scores (empty without
    /// them), its block mask built once per lengths and offsets.
    pub(crate) fn own_pattern(&self, input: &AttentionInput) -> AttentionPattern {
        let (l_q, l_k) = (input.query.dims()[1], input.key.dims()[1]);
        self.with_own_sinks(self.pattern_for(l_q, l_k, input.query_offset, input.key_offset))
    }

    /// `pattern` with the module's sink logits, when it has them (this call's values: a
    /// parameter, so never in the cached patterns).
    pub(crate) fn with_own_sinks(&self, pattern: AttentionPattern) -> AttentionPattern {
        match &self.sinks {
            Some(sinks) => pattern.with_sinks(sinks.val()),
            None => pattern,
        }
    }

    /// [`own_pattern`](Self::own_pattern) for scores `[.., l_q, l_k]` whose first query and
    /// key are at these positions.
    pub(crate) fn pattern_for(
        &self,
        l_q: usize,
        l_k: usize,
        query_offset: usize,
        key_offset: usize,
    ) -> AttentionPattern {
        if self.window.is_none() && self.softcap.is_none() {
            return AttentionPattern::new();
        }
        // The window and the cap are public fields: part of the key, so a changed module (or a
        // clone sharing the cache) never gets another setting's pattern.
        let key = [
            l_q,
            l_k,
            query_offset,
            key_offset,
            self.window.map_or(usize::MAX, |w| w),
            self.softcap.map_or(u64::MAX, f64::to_bits) as usize,
        ];
        self.patterns.get_or_insert_with(key, || {
            let mut pattern = AttentionPattern::new();
            if let Some(window) = self.window {
                // |(q + query_offset) − (kv + key_offset)| ≤ window, as a band of q − kv.
                let (w, shift) = (window as i64, query_offset as i64 - key_offset as i64);
                let local = Band {
                    from: -w - shift,
                    to: w - shift,
                };
                pattern = pattern.with_mask(&local, [1, 1, l_q, l_k]);
            }
            if let Some(cap) = self.softcap {
                pattern = pattern.with_softcap(cap);
            }
            pattern
        })
    }

    /// [`forward_context`](Self::forward_context), under its former name.
    #[deprecated(
        since = "0.2.0",
        note = "renamed `forward_context`, as burn names the output"
    )]
    pub fn forward_without_weights(&self, input: AttentionInput) -> Tensor<3> {
        self.forward_context(input)
    }

    /// The `d_model` field, under its former accessor.
    #[deprecated(since = "0.2.0", note = "use the `d_model` field, like `n_heads`")]
    pub fn d_model(&self) -> usize {
        self.d_model
    }

    /// Projects and splits into heads (q `[batch, n_heads, l, d]`, k and v
    /// `[batch, n_kv_heads, l, d]`), with the positions inside attention applied: q and k
    /// rotated (RoPE), or the score bias `[1, heads, l_q, l_k]`.
    #[allow(clippy::type_complexity)]
    pub(crate) fn project(
        &self,
        input: AttentionInput,
    ) -> (Tensor<4>, Tensor<4>, Tensor<4>, Option<Tensor<4>>) {
        let (l_q, l_k) = (input.query.dims()[1], input.key.dims()[1]);
        let device = input.query.device();
        let q = self.project_queries(input.query, input.query_offset);
        let (k, v) = self.project_keys_values(input.key, input.value, input.key_offset);
        let bias = self
            .positions
            .bias(l_q, l_k, input.query_offset, input.key_offset, &device);
        (q, k, v, bias)
    }

    /// Queries `[batch, l, d_model]` → `[batch, n_heads, l, d_k]`, rotated from `offset` (RoPE).
    pub(crate) fn project_queries(&self, query: Tensor<3>, offset: usize) -> Tensor<4> {
        let q = split_heads(self.w_q.forward(query), self.n_heads, self.d_k);
        let q = match &self.q_norm {
            Some(norm) => norm.forward(q),
            None => q,
        };
        self.positions.rotate(q, offset)
    }

    /// Keys and values `[batch, l, d_model]` → `[batch, n_kv_heads, l, d]`, keys rotated from
    /// `offset` (RoPE): what a [`KvCache`](crate::KvCache) holds.
    pub(crate) fn project_keys_values(
        &self,
        key: Tensor<3>,
        value: Tensor<3>,
        offset: usize,
    ) -> (Tensor<4>, Tensor<4>) {
        let k = split_heads(self.w_k.forward(key), self.n_kv_heads, self.d_k);
        let k = match &self.k_norm {
            Some(norm) => norm.forward(k),
            None => k,
        };
        let v = split_heads(self.w_v.forward(value), self.n_kv_heads, self.d_v);
        (self.positions.rotate(k, offset), v)
    }

    /// `[batch, n_kv_heads, l, d]` → `[batch, n_heads, l, d]`, each key/value head repeated for
    /// its group of query heads.
    pub(crate) fn repeat_kv(&self, x: Tensor<4>) -> Tensor<4> {
        crate::fused::repeat_kv(x, self.n_heads)
    }

    /// `[batch, heads, l_q, d_v]` → gated → concatenated heads → `w_o` → `[batch, l_q, d_model]`.
    pub(crate) fn merge_heads(
        &self,
        context: Tensor<4>,
        gates: Option<Tensor<1>>,
        batch: usize,
        l_q: usize,
    ) -> Tensor<3> {
        let context = match gates {
            Some(gates) => context * gates.reshape([1, self.n_heads, 1, 1]),
            None => context,
        };
        let concat = context
            .swap_dims(1, 2)
            .reshape([batch, l_q, self.n_heads * self.d_v]);
        self.w_o.forward(concat)
    }
}

/// `[batch, l, heads·d]` → `[batch, heads, l, d]`, heads in the order PyTorch's
/// `view(b, l, h, d).transpose(1, 2)` gives.
fn split_heads(x: Tensor<3>, heads: usize, d: usize) -> Tensor<4> {
    let [batch, len, _] = x.dims();
    x.reshape([batch, len, heads, d]).swap_dims(1, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The module window's block mask, with the offsets of a cache or a cross-attention,
    /// allows exactly `|(q + query_offset) − (kv + key_offset)| ≤ window`.
    #[test]
    fn the_window_pattern_follows_the_offsets() {
        use crate::mask_mod::MaskMod;
        let device = Device::flex();
        for (window, query_offset, key_offset) in
            [(0, 0, 0), (5, 0, 0), (9, 7, 0), (4, 0, 6), (20, 3, 0)]
        {
            let mha = MultiHeadAttentionConfig::new(8, 2)
                .with_window(Some(window))
                .init(&device);
            let shape = [1, 1, 45, 38];
            let pattern = mha.pattern_for(45, 38, query_offset, key_offset);
            let tiled = pattern.block_mask().expect("a window").to_mask(&device);
            let direct = |_b: usize, _h: usize, q: usize, kv: usize| {
                (q + query_offset).abs_diff(kv + key_offset) <= window
            };
            assert_eq!(
                tiled.into_data().try_to_vec::<bool>().unwrap(),
                direct
                    .to_mask(shape, &device)
                    .into_data()
                    .try_to_vec::<bool>()
                    .unwrap(),
                "window {window}, offsets {query_offset}, {key_offset}"
            );
        }
    }

    #[test]
    fn derived_head_width_must_divide_d_model() {
        let err = MultiHeadAttentionConfig::new(64, 3).validate().unwrap_err();
        assert!(
            err.to_string()
                .contains("3 heads do not divide d_model = 64"),
            "{err}"
        );
        let free = MultiHeadAttentionConfig::new(64, 3)
            .with_d_k(Some(10))
            .with_d_v(Some(7));
        assert_eq!(free.head_dims().unwrap(), (10, 7));
    }

    #[test]
    fn free_head_widths_shape_the_projections() {
        let device = Device::flex();
        let mha = MultiHeadAttentionConfig::new(12, 3)
            .with_d_k(Some(5))
            .with_d_v(Some(7))
            .with_bias(true)
            .init(&device);
        assert_eq!(mha.w_q.weight.dims(), [12, 15]);
        assert_eq!(mha.w_v.weight.dims(), [12, 21]);
        assert_eq!(mha.w_o.weight.dims(), [21, 12]);
        assert!(mha.w_o.bias.is_some());
        // 3 × (12·15 + 15) + (12·21 + 21) + (21·12 + 12)... counted by burn:
        assert_eq!(
            mha.num_params(),
            (12 * 15 + 15) * 2 + (12 * 21 + 21) + (21 * 12 + 12)
        );
    }

    #[test]
    fn cross_attention_and_shape_errors() {
        let device = Device::flex();
        let mha = MultiHeadAttentionConfig::new(8, 2).init(&device);
        let q = Tensor::<3>::ones([2, 3, 8], &device);
        let ctx = Tensor::<3>::ones([2, 6, 8], &device);
        let out = mha
            .try_forward(AttentionInput::cross_attention(q.clone(), ctx))
            .unwrap();
        assert_eq!(out.weights.dims(), [2, 2, 3, 6]);

        let bad = Tensor::<3>::ones([2, 6, 5], &device);
        let err = mha
            .try_forward(AttentionInput::cross_attention(q, bad))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "shape mismatch for key: expected [2, l_k, 8], got [2, 6, 5]"
        );
    }
}
