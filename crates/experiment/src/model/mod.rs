//! The classifier a run trains: the seed experiment's model trained from scratch (embedding →
//! [positional encoding] → dropout → self-attention → residual + LayerNorm → masked mean →
//! dropout → linear), or a pretrained BERT-family encoder with a linear head
//! ([`PretrainedClassifier`]).

use attention::{
    AttentionError, AttentionInput, EncoderInput, EncoderLayer, EncoderLayerConfig, LayerNorm,
    LayerNormConfig, LearnedPositionalEmbedding, LearnedPositionalEmbeddingConfig,
    MultiHeadAttention, MultiHeadAttentionConfig, SinusoidalPositionalEncoding,
    SinusoidalPositionalEncodingConfig,
};
use burn::{
    nn::{
        Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig,
        loss::CrossEntropyLossConfig,
    },
    prelude::*,
    store::{ModuleRecord, RecordError},
    train::ClassificationOutput,
};
use dataset::{Packing, TextBatch};

mod legacy;
mod options;
mod pretrained;

use legacy::LegacyClassifier;
pub use options::{ModelOptions, Pooling, Positions, QkNormKind};
pub use pretrained::PretrainedClassifier;

/// Configuration of [`Classifier`]: the sizes the data decides, and the [`ModelOptions`].
#[derive(Config, Debug)]
pub struct ClassifierConfig {
    /// Vocabulary size, `<pad>` and `<unk>` included.
    pub vocab_size: usize,
    /// Number of classes.
    pub n_classes: usize,
    /// Longest sequence the positional table covers (the data's `max_len`). Default: 64.
    #[config(default = 64)]
    pub max_len: usize,
    /// The hyperparameters. Default: [`ModelOptions::default`].
    #[config(default = "ModelOptions::default()")]
    pub options: ModelOptions,
    /// The pretrained encoder's shape (its `config.json`), when `options.encoder` names one.
    /// Default: `None` (trained from scratch).
    #[config(default = "None")]
    pub bert: Option<attention::BertConfig>,
    /// The width of the word vectors `options.embeddings` names (read from them when a run
    /// starts): the embedding table keeps it, and a projection maps it to d_model when they
    /// differ. Default: `None` (the table is d_model wide).
    #[config(default = "None")]
    pub embedding_dim: Option<usize>,
}

/// A configuration value that cannot work, with the key to fix (as in the TOML file and, with
/// dashes, the flag).
#[derive(Debug, thiserror::Error)]
#[error("invalid {key}: {reason}")]
pub struct ConfigError {
    /// The offending key.
    pub key: &'static str,
    /// Why.
    pub reason: String,
}

impl ConfigError {
    pub fn new(key: &'static str, reason: impl Into<String>) -> Self {
        Self {
            key,
            reason: reason.into(),
        }
    }
}

impl ClassifierConfig {
    /// Checks every value without building anything: the attention and the positional
    /// encoding through their own configs' checks (named by this config's keys), the rest here.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, p) in [
            ("dropout", self.options.dropout),
            ("token_dropout", self.options.token_dropout),
        ] {
            if !(p.is_finite() && (0.0..1.0).contains(&p)) {
                return Err(ConfigError::new(key, format!("must be in [0, 1), got {p}")));
            }
        }
        if !(self.options.embedding_std.is_finite() && self.options.embedding_std > 0.0) {
            return Err(ConfigError::new(
                "embedding_std",
                format!(
                    "must be a positive finite number, got {}",
                    self.options.embedding_std
                ),
            ));
        }
        if self.vocab_size == 0 || self.n_classes == 0 {
            return Err(ConfigError::new(
                "vocab_size/n_classes",
                "must be at least 1",
            ));
        }
        if self.embedding_dim == Some(0) {
            return Err(ConfigError::new("embeddings", "vectors of width 0"));
        }
        if self.options.encoder.is_some() {
            for (key, set) in [
                ("window", self.options.window.is_some()),
                ("softcap", self.options.softcap.is_some()),
                ("qk_norm", self.options.qk_norm.is_some()),
                ("sinks", self.options.sinks),
            ] {
                if set {
                    return Err(ConfigError::new(
                        key,
                        "is for models from scratch; a pretrained encoder attends as it was trained",
                    ));
                }
            }
            if let Some(vectors) = &self.options.embeddings {
                return Err(ConfigError::new(
                    "embeddings",
                    format!(
                        "{vectors} is for models from scratch; a pretrained encoder has its own embeddings"
                    ),
                ));
            }
            return match &self.bert {
                Some(bert) => bert
                    .validate()
                    .map_err(|e| ConfigError::new("encoder", e.to_string())),
                // Filled in from the model's config.json once it is found.
                None => Ok(()),
            };
        }
        // The attention crate names its own fields; say them as this config's keys.
        let ours = |error: AttentionError| match error {
            // This model has no d_k/d_v keys, so the crate's "or set d_k and d_v" is no choice.
            AttentionError::InvalidConfig {
                field: "n_heads",
                reason,
            } => ConfigError::new(
                "heads",
                reason.replace(
                    "choose a divisor or set d_k and d_v explicitly",
                    "pick a divisor of d_model",
                ),
            ),
            AttentionError::InvalidConfig { field, reason } => ConfigError::new(
                if field == "dropout" {
                    "attention_dropout"
                } else {
                    field
                },
                reason,
            ),
            other => ConfigError::new("model", other.to_string()),
        };
        if self.options.layers == 0 {
            return Err(ConfigError::new("layers", "must be at least 1"));
        }
        self.attention_config().validate().map_err(ours)?;
        match self.options.positions {
            Positions::Sinusoidal => self.sinusoidal_config().validate().map_err(ours),
            Positions::Learned => self.learned_config().validate().map_err(ours),
            _ => Ok(()),
        }
    }

    fn attention_config(&self) -> MultiHeadAttentionConfig {
        MultiHeadAttentionConfig::new(self.options.d_model, self.options.heads)
            .with_dropout(self.options.attention_dropout)
            .with_positions(self.options.positions.in_attention())
            .with_window(self.options.window)
            .with_softcap(self.options.softcap)
            .with_qk_norm(self.options.qk_norm.map(QkNormKind::in_attention))
            .with_sinks(self.options.sinks)
    }

    /// Layers after the first: the same block (attention, residual, LayerNorm).
    fn deeper_config(&self) -> EncoderLayerConfig {
        EncoderLayerConfig::new(self.options.d_model, self.options.heads)
            .with_feed_forward(false)
            .with_norm_first(false)
            .with_dropout(0.0)
            .with_attention_dropout(self.options.attention_dropout)
            .with_positions(self.options.positions.in_attention())
            .with_window(self.options.window)
            .with_softcap(self.options.softcap)
            .with_qk_norm(self.options.qk_norm.map(QkNormKind::in_attention))
            .with_sinks(self.options.sinks)
    }

    fn sinusoidal_config(&self) -> SinusoidalPositionalEncodingConfig {
        SinusoidalPositionalEncodingConfig::new(self.options.d_model).with_max_len(self.max_len)
    }

    fn learned_config(&self) -> LearnedPositionalEmbeddingConfig {
        LearnedPositionalEmbeddingConfig::new(self.options.d_model).with_max_len(self.max_len)
    }

    /// The model's size: a pretrained encoder's from its config (BERT's positions are a
    /// learned table added to the embeddings), else the options'.
    pub fn shape(&self) -> ModelShape {
        match (&self.bert, &self.options.encoder) {
            (Some(bert), Some(_)) => ModelShape {
                layers: bert.num_hidden_layers,
                heads: bert.num_attention_heads,
                d_model: bert.hidden_size,
                positions: Positions::Learned,
            },
            _ => ModelShape {
                layers: self.options.layers,
                heads: self.options.heads,
                d_model: self.options.d_model,
                positions: self.options.positions,
            },
        }
    }

    /// Builds the model on `device`: randomly initialised (a pretrained encoder's weights come
    /// from [`PretrainedClassifier::load_pretrained`] or a record).
    pub fn init(&self, device: &Device) -> Classifier {
        match &self.bert {
            Some(bert) if self.options.encoder.is_some() => {
                Classifier::Pretrained(PretrainedClassifier::init(
                    bert,
                    self.n_classes,
                    self.options.pooling,
                    self.options.dropout,
                    device,
                ))
            }
            _ => Classifier::Scratch(self.init_scratch(device)),
        }
    }

    fn init_scratch(&self, device: &Device) -> ScratchClassifier {
        let d_model = self.options.d_model;
        let width = self.embedding_dim.unwrap_or(d_model);
        ScratchClassifier {
            embedding: EmbeddingConfig::new(self.vocab_size, width)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: self.options.embedding_std,
                })
                .init(device),
            // Variance-preserving (std 1/sqrt(width)), so projected vectors keep the table's scale.
            project: (width != d_model).then(|| {
                LinearConfig::new(width, d_model)
                    .with_bias(false)
                    .with_initializer(Initializer::KaimingNormal {
                        gain: 1.0,
                        fan_out_only: false,
                    })
                    .init(device)
            }),
            token_dropout: DropoutConfig::new(self.options.token_dropout).init(),
            positions: (self.options.positions == Positions::Sinusoidal)
                .then(|| self.sinusoidal_config().init(device)),
            learned: (self.options.positions == Positions::Learned)
                .then(|| self.learned_config().init(device)),
            // One head gets d_k = d_v = d_model: as many parameters as any head count.
            attention: self.attention_config().init(device),
            norm: LayerNormConfig::new(self.options.d_model).init(device),
            deeper: (1..self.options.layers)
                .map(|_| self.deeper_config().init(device))
                .collect(),
            dropout: DropoutConfig::new(self.options.dropout).init(),
            output: LinearConfig::new(self.options.d_model, self.n_classes).init(device),
        }
    }

    /// The model with `record`'s weights, or the error when they do not fit this configuration
    /// (a missing tensor or another shape). Records of models trained from scratch saved before
    /// the classifier had two kinds (no `Scratch.` in their names), and before it held one
    /// attention field (`single.*` for one head, `multi.*` for more), load as well.
    pub fn load(&self, record: ModuleRecord, device: &Device) -> Result<Classifier, RecordError> {
        let error = match self.init(device).try_load_record(record.clone()) {
            Ok(model) => return Ok(model),
            Err(error) => error,
        };
        if self.options.encoder.is_some() {
            return Err(error);
        }
        if let Ok(model) = self.init_scratch(device).try_load_record(record.clone()) {
            return Ok(Classifier::Scratch(model));
        }
        LegacyClassifier::from((self.init_scratch(device), self.options.heads))
            .try_load_record(record)
            .map(|legacy| Classifier::Scratch(legacy.into()))
            .map_err(|_| error)
    }
}

/// A classifier's size, for summaries and run descriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelShape {
    /// Attention layers.
    pub layers: usize,
    /// Heads per layer.
    pub heads: usize,
    /// Hidden width.
    pub d_model: usize,
    /// Where positions come from.
    pub positions: Positions,
}

/// How many rows of `logits` have their largest value at the target class, as a one-element
/// tensor left on the device (read it when convenient).
///
/// # Shapes
/// logits `[batch, classes]`, targets `[batch]` → `[1]`
pub fn correct_predictions(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1, Int> {
    let n = targets.dims()[0];
    logits.argmax(1).reshape([n]).equal(targets).int().sum()
}

/// The model a run trains.
// Built once per run and moved rarely; boxing a variant would put every parameter access of
// training behind one more pointer for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Classifier {
    /// Trained from scratch: the seed's attention classifier.
    Scratch(ScratchClassifier),
    /// A pretrained BERT-family encoder with a linear head.
    Pretrained(PretrainedClassifier),
}

/// Masked mean over the real tokens; an empty text (all padding) pools to zero.
///
/// # Shapes
/// hidden `[batch, len, d]`, padding mask `[batch, len]` → `[batch, d]`
pub fn masked_mean(hidden: Tensor<3>, mask_padding: Tensor<2, Bool>) -> Tensor<2> {
    let [batch, _, d] = hidden.dims();
    let keep = mask_padding.bool_not().float().unsqueeze_dim::<3>(2); // [batch, len, 1]
    let pooled = (hidden * keep.clone()).sum_dim(1) / keep.sum_dim(1).clamp_min(1.0); // [batch, 1, d]
    pooled.reshape([batch, d])
}

/// Mean over each text's tokens of a packed batch ([`Packing`]): `[texts, d]`, in label order;
/// a text without tokens pools to zero, as [`masked_mean`] does.
///
/// # Shapes
/// hidden `[rows, len, d]`, text ids `[rows, len]` (`texts` on padding) → `[texts, d]`
pub fn packed_mean(hidden: Tensor<3>, text_ids: Tensor<2, Int>, texts: usize) -> Tensor<2> {
    let [rows, len, d] = hidden.dims();
    let device = hidden.device();
    let slots = rows * len;
    // [texts, slots] one-hot of each slot's text: the mean is one matmul, on any backend.
    let of_text = text_ids
        .reshape([1, slots])
        .expand([texts, slots])
        .equal(
            Tensor::<1, Int>::arange(0..texts as i64, &device)
                .reshape([texts, 1])
                .expand([texts, slots]),
        )
        .float();
    let counts = of_text.clone().sum_dim(1).clamp_min(1.0); // [texts, 1]
    of_text.matmul(hidden.reshape([slots, d])) / counts
}

/// The attention text classifier trained from scratch: attention layers over word embeddings.
#[derive(Module, Debug)]
pub struct ScratchClassifier {
    embedding: Embedding,
    /// Word vectors' width → d_model, when the table is as wide as pretrained vectors.
    project: Option<Linear>,
    token_dropout: Dropout,
    positions: Option<SinusoidalPositionalEncoding>,
    learned: Option<LearnedPositionalEmbedding>,
    attention: MultiHeadAttention,
    norm: LayerNorm,
    /// Layers 2..N (the first is `attention` + `norm`, where records of one layer keep it).
    deeper: Vec<EncoderLayer>,
    dropout: Dropout,
    output: Linear,
}

/// Logits and the attention weights that produced them.
#[derive(Debug, Clone)]
pub struct ClassifierOutput {
    /// `[batch, n_classes]`
    pub logits: Tensor<2>,
    /// The first layer's attention, `[batch, heads, len, len]`: over the tokens themselves.
    pub weights: Tensor<4>,
    /// Every layer's attention, first to last, `layers × [batch, heads, len, len]`.
    pub layer_weights: Vec<Tensor<4>>,
}

impl Classifier {
    /// # Shapes
    /// - tokens `[batch, len]`, padding mask `[batch, len]` (`true` = padding)
    /// - logits `[batch, n_classes]`, attention weights `layers × [batch, heads, len, len]`
    pub fn forward(
        &self,
        tokens: Tensor<2, Int>,
        mask_padding: Tensor<2, Bool>,
    ) -> ClassifierOutput {
        let (logits, layer_weights) = self.run(tokens, mask_padding, None, true, None);
        ClassifierOutput {
            logits,
            weights: layer_weights[0].clone(),
            layer_weights,
        }
    }

    /// The logits alone, `[batch, n_classes]`: for inference this takes burn's fused attention
    /// kernel, which skips the `[batch, heads, len, len]` weights.
    pub fn logits(&self, tokens: Tensor<2, Int>, mask_padding: Tensor<2, Bool>) -> Tensor<2> {
        self.run(tokens, mask_padding, None, false, None).0
    }

    /// The heads that [`classify_gated`](Self::classify_gated) gates: the first layer's for a
    /// model trained from scratch, every layer's (layer-major) for a pretrained encoder.
    pub fn heads(&self) -> usize {
        match self {
            Self::Scratch(m) => m.attention.n_heads,
            Self::Pretrained(m) => m.layers() * m.heads(),
        }
    }

    /// A pretrained encoder's weights from its checkpoint folder `dir` (a model from scratch is
    /// returned as it is).
    pub fn load_pretrained(self, dir: &std::path::Path) -> Result<Self, AttentionError> {
        match self {
            Self::Pretrained(m) => Ok(Self::Pretrained(m.load_pretrained(dir)?)),
            scratch => Ok(scratch),
        }
    }

    /// A pretrained encoder without gradients, so only the head trains (a model from scratch is
    /// returned as it is).
    pub fn freeze_encoder(self) -> Self {
        match self {
            Self::Pretrained(m) => Self::Pretrained(m.freeze_encoder()),
            scratch => scratch,
        }
    }

    /// The word-embedding table frozen: a pretrained encoder's, or the table of a model from
    /// scratch (pretrained word vectors kept as they are: Kim's "static" embeddings).
    pub fn freeze_embeddings(self) -> Self {
        match self {
            Self::Pretrained(m) => Self::Pretrained(m.freeze_embeddings()),
            Self::Scratch(mut m) => {
                m.embedding = m.embedding.freeze();
                Self::Scratch(m)
            }
        }
    }

    /// The embedding table with the rows `vectors` gives replaced (a pretrained encoder is
    /// returned as it is): `vectors(id)` is the vector of the token `id`, as wide as the table.
    /// Returns the model and how many rows were replaced.
    pub fn with_word_vectors<'a>(
        self,
        vectors: impl Fn(usize) -> Option<&'a [f32]>,
    ) -> (Self, usize) {
        match self {
            Self::Scratch(mut m) => {
                let weight = m.embedding.weight.val();
                let [rows, width] = weight.dims();
                let device = weight.device();
                let mut table = weight
                    .into_data()
                    .try_into_vec_as::<f32>()
                    .expect("an f32 embedding table");
                let mut replaced = 0;
                for (id, row) in table.chunks_exact_mut(width).enumerate().take(rows) {
                    if let Some(vector) = vectors(id) {
                        row.copy_from_slice(vector);
                        replaced += 1;
                    }
                }
                let table = Tensor::<2>::from_data(TensorData::new(table, [rows, width]), &device);
                m.embedding.weight = burn::module::Param::from_tensor(table);
                (Self::Scratch(m), replaced)
            }
            pretrained => (pretrained, 0),
        }
    }

    /// Heads per layer.
    pub fn heads_per_layer(&self) -> usize {
        match self {
            Self::Scratch(m) => m.attention.n_heads,
            Self::Pretrained(m) => m.heads(),
        }
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        match self {
            Self::Scratch(m) => m.output.weight.dims()[1],
            Self::Pretrained(m) => m.classes(),
        }
    }

    fn run(
        &self,
        tokens: Tensor<2, Int>,
        mask_padding: Tensor<2, Bool>,
        packing: Option<Packing>,
        with_weights: bool,
        gates: Option<Tensor<1>>,
    ) -> (Tensor<2>, Vec<Tensor<4>>) {
        match self {
            Self::Scratch(m) => m.run(tokens, mask_padding, packing, with_weights, gates),
            Self::Pretrained(m) => {
                // The configuration refuses packing with an encoder (`batching`).
                assert!(
                    packing.is_none(),
                    "a pretrained encoder takes one text per row, not packed batches"
                );
                let gates = gates.map(|g| g.reshape([m.layers(), m.heads()]));
                m.run(tokens, mask_padding, with_weights, gates)
            }
        }
    }

    /// Logits, loss and targets of a batch.
    pub fn classify(&self, batch: TextBatch) -> ClassificationOutput {
        self.classify_gated(batch, None)
    }

    /// [`classify`](Self::classify) with heads gated, `gates` `[heads()]` (0 removes a head):
    /// what [`attention::head_importance`] differentiates and head masking evaluates.
    pub fn classify_gated(
        &self,
        batch: TextBatch,
        gates: Option<Tensor<1>>,
    ) -> ClassificationOutput {
        let (logits, _) = self.run(
            batch.tokens,
            batch.mask_padding,
            batch.packing,
            false,
            gates,
        );
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.labels.clone());
        ClassificationOutput::new(loss, logits, batch.labels)
    }
}

impl ScratchClassifier {
    /// The word-embedding table, `[vocab, width]`.
    pub fn embedding(&self) -> &Embedding {
        &self.embedding
    }

    /// Packed batches (`packing`) take each token's position in its text, attend within
    /// their text only (a document mask) and pool per text. Positions inside attention (RoPE,
    /// ALiBi, T5) depend on the distance between query and key alone, which is the same packed
    /// or not, so they need nothing more.
    fn run(
        &self,
        tokens: Tensor<2, Int>,
        mask_padding: Tensor<2, Bool>,
        packing: Option<Packing>,
        with_weights: bool,
        gates: Option<Tensor<1>>,
    ) -> (Tensor<2>, Vec<Tensor<4>>) {
        let [batch, len] = tokens.dims();
        let mut x = self.embedding.forward(tokens);
        if let Some(project) = &self.project {
            x = project.forward(x);
        }
        if self.token_dropout.prob > 0.0 {
            // One keep/drop draw per token, shared by its d_model features (active only in training).
            let keep = self
                .token_dropout
                .forward(Tensor::<3>::ones([batch, len, 1], &x.device()));
            x = x * keep;
        }
        // The batcher's positions are [rows, len], each below len.
        let fits = "packed positions match their tokens";
        let own = packing.as_ref().map(|p| p.positions.clone());
        if let Some(positions) = &self.positions {
            x = match own.clone() {
                Some(own) => positions.forward_positions(x, own).expect(fits),
                None => positions.forward(x),
            };
        }
        if let Some(learned) = &self.learned {
            x = match own {
                Some(own) => learned.forward_positions(x, own).expect(fits),
                None => learned.forward(x),
            };
        }
        let x = self.dropout.forward(x);
        // Packed texts see their own tokens only; padding is a text of its own, so no row of
        // scores is fully masked.
        let documents = packing
            .as_ref()
            .map(|p| attention::mask::document_mask(p.text_ids.clone()));
        let mut input = AttentionInput::self_attention(x.clone());
        input = match &documents {
            Some(documents) => input.mask_attention(documents.clone()),
            None => input.mask_padding(mask_padding.clone()),
        };
        input.head_gates = gates;
        let mut weights = Vec::with_capacity(1 + self.deeper.len());
        let context = if with_weights {
            let out = self.attention.forward(input);
            weights.push(out.weights);
            out.context
        } else {
            self.attention.forward_context(input)
        };
        let mut hidden = self.norm.forward(x + context);
        let mut deeper = EncoderInput::new(hidden.clone());
        deeper = match documents {
            Some(documents) => deeper.mask_attention(documents),
            None => deeper.mask_padding(mask_padding.clone()),
        };
        for layer in &self.deeper {
            let (next, w) = layer.forward(&deeper, with_weights);
            weights.extend(w);
            deeper.x = next;
        }
        if !self.deeper.is_empty() {
            hidden = deeper.x;
        }
        let pooled = match packing {
            Some(p) => packed_mean(hidden, p.text_ids, p.texts),
            None => masked_mean(hidden, mask_padding),
        };
        let logits = self.output.forward(self.dropout.forward(pooled));
        (logits, weights)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_head_and_four_heads_have_the_same_size() {
        let device = Device::flex();
        let single = classifier(100, 2, 1, 64, true).init(&device);
        let multi = classifier(100, 2, 4, 64, true).init(&device);
        assert_eq!(single.num_params(), multi.num_params());
        // embedding + 4 projections + LayerNorm + output layer
        assert_eq!(
            single.num_params(),
            100 * 64 + 4 * 64 * 64 + 2 * 64 + 64 * 2 + 2
        );
    }

    #[test]
    fn deeper_models_repeat_the_block_and_return_every_layers_weights() {
        let device = Device::flex();
        let one = classifier(20, 3, 2, 8, true);
        let three = one.clone().with_options(ModelOptions {
            layers: 3,
            ..one.options.clone()
        });
        let (one, three) = (one.init(&device), three.init(&device));
        // Each extra layer is one more attention (4 projections) and LayerNorm.
        assert_eq!(
            three.num_params() - one.num_params(),
            2 * (4 * 8 * 8 + 2 * 8)
        );
        let tokens = Tensor::<2, Int>::from_data([[4, 5, 6, 0]], &device);
        let out = three.forward(tokens.clone(), tokens.clone().equal_elem(0));
        assert_eq!(out.layer_weights.len(), 3);
        assert_eq!(out.layer_weights[2].dims(), [1, 2, 4, 4]);
        let fused = three.logits(tokens.clone(), tokens.equal_elem(0));
        let diff = (out.logits - fused).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "fused path differs by {diff}");
    }

    #[test]
    fn records_of_older_layouts_load_and_others_are_an_error() {
        let device = Device::flex();
        let tokens = Tensor::<2, Int>::from_data([[2, 3, 4]], &device);
        let padding = Tensor::<2, Bool>::from_data([[false, false, false]], &device);
        for heads in [1, 2] {
            let config = classifier(10, 2, heads, 8, true);
            let model = config.init(&device);
            let expected = values(model.logits(tokens.clone(), padding.clone()));
            let Classifier::Scratch(scratch) = model else {
                panic!("a model from scratch");
            };
            // Saved before the classifier had two kinds (no `Scratch.` prefix).
            let unprefixed = scratch.clone().into_record();
            let loaded = config.load(unprefixed, &device).unwrap();
            assert_eq!(
                values(loaded.logits(tokens.clone(), padding.clone())),
                expected
            );
            // Saved as models were before they had one attention field.
            let legacy = LegacyClassifier::from((scratch, heads)).into_record();
            let loaded = config.load(legacy, &device).unwrap();
            assert_eq!(
                values(loaded.logits(tokens.clone(), padding.clone())),
                expected
            );
        }
        let other = classifier(10, 2, 4, 16, true).init(&device);
        let small = classifier(10, 2, 4, 8, true);
        assert!(small.load(other.into_record(), &device).is_err());
    }

    fn classifier(
        vocab: usize,
        classes: usize,
        heads: usize,
        d_model: usize,
        pe: bool,
    ) -> ClassifierConfig {
        let positions = Positions::from_pe(pe);
        ClassifierConfig::new(vocab, classes).with_options(ModelOptions {
            heads,
            d_model,
            positions,
            ..ModelOptions::default()
        })
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_into_vec_as::<f32>().unwrap()
    }

    #[test]
    fn word_vectors_replace_their_rows_and_a_projection_maps_their_width() {
        let device = Device::flex().autodiff();
        let plain = classifier(6, 2, 2, 8, true);
        let config = plain.clone().with_embedding_dim(Some(3));
        let model = config.init(&device);
        // A 6 × 3 table and a 3 → 8 projection instead of a 6 × 8 table.
        assert_eq!(
            model.num_params(),
            plain.init(&device).num_params() - 6 * 8 + 6 * 3 + 3 * 8
        );
        let table = |m: &Classifier| match m {
            Classifier::Scratch(m) => values(m.embedding.weight.val()),
            Classifier::Pretrained(_) => unreachable!(),
        };
        let before = table(&model);
        let vector = [1.0, 2.0, 3.0];
        let (model, found) = model.with_word_vectors(|id| (id == 4).then_some(&vector[..]));
        assert_eq!(found, 1);
        let after = table(&model);
        assert_eq!(after[12..15], vector);
        assert_eq!((&after[..12], &after[15..]), (&before[..12], &before[15..]));
        // Still trained.
        let tokens = Tensor::<2, Int>::from_data([[4, 2, 0]], &device);
        let grads = model
            .logits(tokens.clone(), tokens.clone().equal_elem(0))
            .sum()
            .backward();
        let Classifier::Scratch(m) = &model else {
            unreachable!()
        };
        assert!(m.embedding.weight.val().grad(&grads).is_some());
        // A record of it loads into the configuration's model (off autodiff: no dropout).
        let device = Device::flex();
        let model = config
            .init(&device)
            .with_word_vectors(|_| Some(&vector[..]))
            .0;
        let tokens = Tensor::<2, Int>::from_data([[4, 2, 0]], &device);
        let mask = tokens.clone().equal_elem(0);
        let expected = values(model.logits(tokens.clone(), mask.clone()));
        let loaded = config.load(model.into_record(), &device).unwrap();
        assert_eq!(values(loaded.logits(tokens, mask)), expected);
        assert!(config.validate().is_ok());
        assert!(plain.with_embedding_dim(Some(0)).validate().is_err());
    }

    #[test]
    fn forward_shapes_and_padding_invariance() {
        let device = Device::flex();
        let model = classifier(20, 3, 2, 8, true).init(&device);
        let tokens = Tensor::<2, Int>::from_data([[4, 5, 6, 0, 0]], &device);
        let mask = tokens.clone().equal_elem(0);
        let padded = model.forward(tokens, mask);
        assert_eq!(padded.logits.dims(), [1, 3]);
        assert_eq!(padded.weights.dims(), [1, 2, 5, 5]);
        let tokens = Tensor::<2, Int>::from_data([[4, 5, 6]], &device);
        let unpadded = model.forward(tokens.clone(), tokens.equal_elem(0)).logits;
        let diff = (padded.logits - unpadded).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "padding changed the logits by {diff}");
    }

    #[test]
    fn logits_without_weights_match_the_full_forward() {
        let device = Device::flex();
        for heads in [1, 2] {
            let model = classifier(20, 3, heads, 8, true).init(&device);
            let tokens = Tensor::<2, Int>::from_data([[4, 5, 6, 0], [7, 0, 0, 0]], &device);
            let mask = tokens.clone().equal_elem(0);
            let full = model.forward(tokens.clone(), mask.clone()).logits;
            let fused = model.logits(tokens, mask);
            let diff = (full - fused).abs().max().into_scalar::<f32>();
            assert!(
                diff < 1e-5,
                "{heads} heads: the fused path differs by {diff}"
            );
        }
    }

    #[test]
    fn packed_texts_classify_as_they_do_one_per_row() {
        use burn::data::dataloader::batcher::Batcher;
        use dataset::{TextBatcher, TextItem};
        let device = Device::flex();
        let items: Vec<TextItem> = [5, 1, 3, 4, 2, 5, 1]
            .iter()
            .enumerate()
            .map(|(i, &n)| TextItem {
                tokens: (0..n).map(|p| 2 + (3 * i + p) % 17).collect(),
                label: i % 3,
            })
            .collect();
        let batcher = TextBatcher::new(8);
        let packed = batcher.pack(items.clone(), &device);
        assert!(
            packed.tokens.dims()[0] < items.len(),
            "several texts per row"
        );
        let one_per_row = batcher.batch(items.clone(), &device);
        let positions = [
            Positions::None,
            Positions::Sinusoidal,
            Positions::Learned,
            Positions::Rope,
            Positions::Alibi,
            Positions::Relative,
        ];
        for (positions, window) in positions.into_iter().map(|p| (p, None)).chain([
            // A window counts distance, the same packed or not.
            (Positions::Rope, Some(1)),
        ]) {
            let model = ClassifierConfig::new(20, 3)
                .with_max_len(8)
                .with_options(ModelOptions {
                    heads: 2,
                    d_model: 8,
                    layers: 2,
                    positions,
                    window,
                    ..ModelOptions::default()
                })
                .init(&device);
            let expected = values(model.classify(one_per_row.clone()).output);
            let got = values(model.classify(packed.clone()).output);
            let diff = expected
                .iter()
                .zip(&got)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(diff < 1e-5, "{positions:?}, window {window:?}: {diff}");
        }
    }

    #[test]
    fn packed_mean_pools_each_text_and_sends_gradients_to_its_tokens() {
        let device = Device::flex().autodiff();
        let hidden = Tensor::<3>::from_data(
            [
                [[1.0, 10.0], [3.0, 30.0], [5.0, 50.0]],
                [[7.0, 70.0], [0.0, 0.0], [9.0, 9.0]],
            ],
            &device,
        )
        .require_grad();
        // Row 0: text 1 (2 tokens), text 0; row 1: text 2, then padding (id 4). Text 3 is empty.
        let ids = Tensor::<2, Int>::from_data([[1, 1, 0], [2, 4, 4]], &device);
        let pooled = packed_mean(hidden.clone(), ids, 4);
        assert_eq!(
            values(pooled.clone()),
            [5.0, 50.0, 2.0, 20.0, 7.0, 70.0, 0.0, 0.0]
        );
        let grads = pooled.sum().backward();
        let grad = hidden.grad(&grads).unwrap();
        let grad: Vec<f32> = grad.into_data().try_into_vec_as::<f32>().unwrap();
        assert_eq!(
            grad,
            [0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
        );
    }
}
