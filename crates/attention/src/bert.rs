//! BERT-family encoders (BERT, MiniLM, …) from Hugging Face checkpoints: the model a
//! `config.json` describes, built from this crate's modules, and the weights of its
//! `model.safetensors` loaded into them.
//!
//! Embeddings (word, position, token type, LayerNorm), post-LN [`EncoderLayer`]s whose
//! attention projections have biases and whose feed-forward block is `Linear → GELU (erf) →
//! Linear`, and the pooler (`tanh(Linear(h[CLS]))`). Its last hidden state equals
//! `transformers.BertModel`'s on the same input (tested on a random tiny BERT written by
//! `tests/fixtures/bert/tiny_bert.py`).
//!
//! ```no_run
//! use attention::{BertInput, BertModel};
//! use burn::prelude::*;
//!
//! let device = Device::flex();
//! // A folder with config.json and model.safetensors (`experiment fetch minilm-l6` makes one).
//! let (config, bert) = BertModel::from_pretrained("models/minilm-l6", &device).unwrap();
//! let tokens = Tensor::<2, Int>::from_data([[101, 7592, 2088, 102]], &device); // [CLS] … [SEP]
//! let out = bert.forward_context(BertInput::new(tokens));
//! assert_eq!(out.hidden.dims(), [1, 4, config.hidden_size]);
//! ```

use std::path::Path;

use burn::{
    module::Param,
    nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig},
    prelude::*,
};
use safetensors::SafeTensors;

use crate::{
    AttentionError, EncoderInput, EncoderLayer, EncoderLayerConfig, LayerNorm, LayerNormConfig,
    pytorch::read_tensor,
};

/// Configuration of [`BertModel`]: the fields of an HF BERT `config.json` this crate uses.
#[derive(Config, Debug)]
pub struct BertConfig {
    /// Word-piece vocabulary size.
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Hidden width of the feed-forward blocks.
    pub intermediate_size: usize,
    /// Longest input the position table covers. Default: `512`.
    #[config(default = 512)]
    pub max_position_embeddings: usize,
    /// Token types (segments). Default: `2`.
    #[config(default = 2)]
    pub type_vocab_size: usize,
    /// LayerNorm's ε. Default: `1e-12`, as BERT.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Dropout on embeddings and sub-block outputs. Default: `0.1`.
    #[config(default = 0.1)]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention weights. Default: `0.1`.
    #[config(default = 0.1)]
    pub attention_probs_dropout_prob: f64,
    /// Standard deviation of the normal initialisation of a model not loaded from a
    /// checkpoint. Default: `0.02`.
    #[config(default = 0.02)]
    pub initializer_range: f64,
}

/// What an HF `config.json` holds (the keys this crate reads; others are ignored).
#[derive(serde::Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "defaults::max_position_embeddings")]
    max_position_embeddings: usize,
    #[serde(default = "defaults::type_vocab_size")]
    type_vocab_size: usize,
    #[serde(default = "defaults::layer_norm_eps")]
    layer_norm_eps: f64,
    #[serde(default = "defaults::dropout")]
    hidden_dropout_prob: f64,
    #[serde(default = "defaults::dropout")]
    attention_probs_dropout_prob: f64,
    #[serde(default = "defaults::initializer_range")]
    initializer_range: f64,
    #[serde(default = "defaults::hidden_act")]
    hidden_act: String,
    #[serde(default = "defaults::position_embedding_type")]
    position_embedding_type: String,
}

mod defaults {
    pub fn max_position_embeddings() -> usize {
        512
    }
    pub fn type_vocab_size() -> usize {
        2
    }
    pub fn layer_norm_eps() -> f64 {
        1e-12
    }
    pub fn dropout() -> f64 {
        0.1
    }
    pub fn initializer_range() -> f64 {
        0.02
    }
    pub fn hidden_act() -> String {
        "gelu".into()
    }
    pub fn position_embedding_type() -> String {
        "absolute".into()
    }
}

impl BertConfig {
    /// Reads an HF `config.json`. A model this crate cannot build (another architecture, an
    /// activation other than GELU, relative position embeddings) is an error naming the key.
    pub fn from_hf_json(text: &str) -> Result<Self, AttentionError> {
        let hf: HfConfig = serde_json::from_str(text)
            .map_err(|e| AttentionError::config("config.json", e.to_string()))?;
        if let Some(kind) = hf.model_type.as_deref()
            && kind != "bert"
        {
            return Err(AttentionError::config(
                "model_type",
                format!("`{kind}`: only BERT-family encoders (`bert`) are built"),
            ));
        }
        if hf.hidden_act != "gelu" {
            return Err(AttentionError::config(
                "hidden_act",
                format!("`{}`: only `gelu` (exact, erf) is built", hf.hidden_act),
            ));
        }
        if hf.position_embedding_type != "absolute" {
            return Err(AttentionError::config(
                "position_embedding_type",
                format!("`{}`: only `absolute` is built", hf.position_embedding_type),
            ));
        }
        let config = Self {
            vocab_size: hf.vocab_size,
            hidden_size: hf.hidden_size,
            num_hidden_layers: hf.num_hidden_layers,
            num_attention_heads: hf.num_attention_heads,
            intermediate_size: hf.intermediate_size,
            max_position_embeddings: hf.max_position_embeddings,
            type_vocab_size: hf.type_vocab_size,
            layer_norm_eps: hf.layer_norm_eps,
            hidden_dropout_prob: hf.hidden_dropout_prob,
            attention_probs_dropout_prob: hf.attention_probs_dropout_prob,
            initializer_range: hf.initializer_range,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the values without building anything.
    pub fn validate(&self) -> Result<(), AttentionError> {
        for (field, value) in [
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
            ("num_hidden_layers", self.num_hidden_layers),
        ] {
            if value == 0 {
                return Err(AttentionError::config(field, "must be at least 1"));
            }
        }
        self.layer_config().validate()
    }

    fn layer_config(&self) -> EncoderLayerConfig {
        EncoderLayerConfig::new(self.hidden_size, self.num_attention_heads)
            .with_d_ff(Some(self.intermediate_size))
            .with_norm_first(false)
            .with_bias(true)
            .with_layer_norm_eps(self.layer_norm_eps)
            .with_dropout(self.hidden_dropout_prob)
            // BERT's intermediate block has no dropout of its own (HF's `BertIntermediate`).
            .with_activation_dropout(Some(0.0))
            .with_attention_dropout(self.attention_probs_dropout_prob)
    }

    /// Builds a randomly initialised model on `device` (embeddings `N(0, initializer_range)`).
    ///
    /// # Panics
    /// When [`validate`](Self::validate) fails.
    pub fn init(&self, device: &Device) -> BertModel {
        if let Err(err) = self.validate() {
            panic!("BertConfig: {err}");
        }
        let d = self.hidden_size;
        let embedding = |n| {
            EmbeddingConfig::new(n, d)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: self.initializer_range,
                })
                .init(device)
        };
        BertModel {
            embeddings: BertEmbeddings {
                word: embedding(self.vocab_size),
                position: embedding(self.max_position_embeddings),
                token_type: embedding(self.type_vocab_size),
                norm: LayerNormConfig::new(d)
                    .with_epsilon(self.layer_norm_eps)
                    .init(device),
                dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
            },
            layers: (0..self.num_hidden_layers)
                .map(|_| self.layer_config().init(device))
                .collect(),
            pooler: Some(LinearConfig::new(d, d).init(device)),
        }
    }
}

/// Word, position and token-type embeddings, summed, normalised and dropped out.
#[derive(Module, Debug)]
pub struct BertEmbeddings {
    /// `[vocab_size, hidden]`
    pub word: Embedding,
    /// `[max_position_embeddings, hidden]`
    pub position: Embedding,
    /// `[type_vocab_size, hidden]`
    pub token_type: Embedding,
    /// LayerNorm over the sum.
    pub norm: LayerNorm,
    /// Dropout after it.
    pub dropout: Dropout,
}

/// A BERT-family encoder: embeddings, post-LN encoder layers, and the pooler.
#[derive(Module, Debug)]
pub struct BertModel {
    /// The input embeddings.
    pub embeddings: BertEmbeddings,
    /// The encoder layers, first to last.
    pub layers: Vec<EncoderLayer>,
    /// `tanh(Linear(h[CLS]))`, when the checkpoint has one.
    pub pooler: Option<Linear>,
}

/// The input of a [`BertModel`].
#[derive(Debug, Clone)]
pub struct BertInput {
    /// Word-piece ids, `[batch, len]`.
    pub tokens: Tensor<2, Int>,
    /// Segment ids, `[batch, len]`; `None` means all 0.
    pub token_types: Option<Tensor<2, Int>>,
    /// `[batch, len]`, `true` = padding (HF's `attention_mask == 0`).
    pub mask_padding: Option<Tensor<2, Bool>>,
    /// `[layers, heads]`: each head's context scaled by its gate, 0 prunes it (HF's
    /// `head_mask`; what [`head_importance`](crate::head_importance) differentiates).
    pub head_gates: Option<Tensor<2>>,
}

impl BertInput {
    /// Tokens without segments or padding.
    pub fn new(tokens: Tensor<2, Int>) -> Self {
        Self {
            tokens,
            token_types: None,
            mask_padding: None,
            head_gates: None,
        }
    }

    /// Masks padding, `[batch, len]`, `true` = padding.
    pub fn mask_padding(mut self, mask: Tensor<2, Bool>) -> Self {
        self.mask_padding = Some(mask);
        self
    }

    /// Segment ids, `[batch, len]`.
    pub fn token_types(mut self, types: Tensor<2, Int>) -> Self {
        self.token_types = Some(types);
        self
    }

    /// Head gates, `[layers, heads]` (0 prunes a head).
    pub fn head_gates(mut self, gates: Tensor<2>) -> Self {
        self.head_gates = Some(gates);
        self
    }
}

/// What [`BertModel`] returns.
#[derive(Debug, Clone)]
pub struct BertOutput {
    /// The last hidden state, `[batch, len, hidden]`.
    pub hidden: Tensor<3>,
    /// The pooler's output, `[batch, hidden]`, when the model has a pooler.
    pub pooled: Option<Tensor<2>>,
    /// Each layer's attention weights, `[batch, heads, len, len]` (empty from
    /// [`forward_context`](BertModel::forward_context)).
    pub weights: Vec<Tensor<4>>,
}

impl BertModel {
    /// Builds the model of `dir/config.json` and loads `dir/model.safetensors` into it.
    pub fn from_pretrained(
        dir: impl AsRef<Path>,
        device: &Device,
    ) -> Result<(BertConfig, Self), AttentionError> {
        let dir = dir.as_ref();
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|source| AttentionError::Io {
            path: config_path.display().to_string(),
            source,
        })?;
        // A byte-order mark (a file saved by a Windows editor) is not JSON.
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let config = BertConfig::from_hf_json(text).map_err(|e| AttentionError::Weights {
            path: config_path.display().to_string(),
            reason: e.to_string(),
        })?;
        let model = config
            .init(device)
            .load_hf_safetensors(dir.join("model.safetensors"))?;
        Ok((config, model))
    }

    /// Loads HF BERT weights (`embeddings.*`, `encoder.layer.N.*`, `pooler.*`, optionally under a
    /// `bert.` prefix as task checkpoints save them; `LayerNorm.gamma`/`beta` as older ones do)
    /// as f32, f64, f16 or bf16. Linear weights are transposed from PyTorch's `[out, in]`. A
    /// missing or misshapen tensor is an error naming it; a checkpoint without a pooler gives a
    /// model without one; other entries (`embeddings.position_ids`, task heads) are ignored.
    pub fn load_hf_safetensors(mut self, path: impl AsRef<Path>) -> Result<Self, AttentionError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| AttentionError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let err = |reason: String| AttentionError::Weights {
            path: path.display().to_string(),
            reason,
        };
        let file = SafeTensors::deserialize(&bytes)
            .map_err(|e| err(format!("not a safetensors file: {e}")))?;
        let prefix = if file.names().iter().any(|n| n.starts_with("bert.")) {
            "bert."
        } else {
            ""
        };
        let w = Checkpoint {
            file: &file,
            prefix,
            device: self.embeddings.word.weight.device(),
        };
        let e = &mut self.embeddings;
        w.embedding("embeddings.word_embeddings", &mut e.word)
            .map_err(err)?;
        w.embedding("embeddings.position_embeddings", &mut e.position)
            .map_err(err)?;
        w.embedding("embeddings.token_type_embeddings", &mut e.token_type)
            .map_err(err)?;
        w.norm("embeddings.LayerNorm", &mut e.norm).map_err(err)?;
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let at = |name: &str| format!("encoder.layer.{i}.{name}");
            let a = &mut layer.attention;
            w.linear(&at("attention.self.query"), &mut a.w_q)
                .map_err(err)?;
            w.linear(&at("attention.self.key"), &mut a.w_k)
                .map_err(err)?;
            w.linear(&at("attention.self.value"), &mut a.w_v)
                .map_err(err)?;
            w.linear(&at("attention.output.dense"), &mut a.w_o)
                .map_err(err)?;
            w.norm(&at("attention.output.LayerNorm"), &mut layer.norm_1)
                .map_err(err)?;
            let ff = layer
                .feed_forward
                .as_mut()
                .expect("BERT layers have a feed-forward block");
            w.linear(&at("intermediate.dense"), &mut ff.linear_in)
                .map_err(err)?;
            w.linear(&at("output.dense"), &mut ff.linear_out)
                .map_err(err)?;
            w.norm(&at("output.LayerNorm"), &mut ff.norm).map_err(err)?;
        }
        let extra = format!("encoder.layer.{}.", self.layers.len());
        if file
            .names()
            .iter()
            .any(|n| n.starts_with(&format!("{prefix}{extra}")))
        {
            return Err(err(format!(
                "has `{prefix}{extra}*`, but config.json says {} layers",
                self.layers.len()
            )));
        }
        match (&mut self.pooler, w.has("pooler.dense.weight")) {
            (Some(pooler), true) => w.linear("pooler.dense", pooler).map_err(err)?,
            (pooler, _) => *pooler = None,
        }
        Ok(self)
    }

    /// The last hidden state, the pooled output and every layer's attention weights.
    ///
    /// # Shapes
    /// - input: tokens, token types and padding mask `[batch, len]`
    /// - hidden `[batch, len, hidden]`, pooled `[batch, hidden]`, weights `layers × [batch,
    ///   heads, len, len]`
    ///
    /// # Panics
    /// When `len` exceeds `max_position_embeddings`.
    pub fn forward(&self, input: BertInput) -> BertOutput {
        self.run(input, true)
    }

    /// [`forward`](Self::forward) without the weights: through the fused attention op on
    /// autodiff devices (training) and burn's fused kernel otherwise.
    pub fn forward_context(&self, input: BertInput) -> BertOutput {
        self.run(input, false)
    }

    fn run(&self, input: BertInput, with_weights: bool) -> BertOutput {
        let [batch, len] = input.tokens.dims();
        let device = input.tokens.device();
        let e = &self.embeddings;
        let max = e.position.weight.dims()[0];
        assert!(
            len <= max,
            "BertModel: {len} tokens, but the position table holds {max} (max_position_embeddings)"
        );
        let positions = Tensor::<1, Int>::arange(0..len as i64, &device)
            .reshape([1, len])
            .expand([batch, len]);
        let types = input
            .token_types
            .unwrap_or_else(|| Tensor::zeros([batch, len], &device));
        let x = e.word.forward(input.tokens)
            + e.position.forward(positions)
            + e.token_type.forward(types);
        let x = crate::fused::dropout_layer(&e.dropout, e.norm.forward(x));
        let mut encoder = EncoderInput::new(x);
        encoder.mask_padding = input.mask_padding;
        let mut weights = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            encoder.head_gates = input.head_gates.as_ref().map(|gates| {
                let heads = gates.dims()[1];
                gates.clone().narrow(0, i, 1).reshape([heads])
            });
            let (x, w) = layer.forward(&encoder, with_weights);
            encoder.x = x;
            weights.extend(w);
        }
        let hidden = encoder.x;
        let pooled = self.pooler.as_ref().map(|pooler| {
            let d = hidden.dims()[2];
            let first = hidden.clone().narrow(1, 0, 1).reshape([batch, d]);
            pooler.forward(first).tanh()
        });
        BertOutput {
            hidden,
            pooled,
            weights,
        }
    }
}

/// Reads a checkpoint's tensors into modules, checking every shape.
struct Checkpoint<'a> {
    file: &'a SafeTensors<'a>,
    prefix: &'a str,
    device: Device,
}

impl Checkpoint<'_> {
    fn has(&self, name: &str) -> bool {
        let full = format!("{}{name}", self.prefix);
        self.file.names().iter().any(|n| **n == full)
    }

    fn read<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Tensor<D>, String> {
        let full = format!("{}{name}", self.prefix);
        Ok(read_tensor(self.file, &full, &shape, &self.device)?.reshape(shape))
    }

    fn embedding(&self, name: &str, embedding: &mut Embedding) -> Result<(), String> {
        let shape = embedding.weight.dims();
        embedding.weight = Param::from_tensor(self.read(&format!("{name}.weight"), shape)?);
        Ok(())
    }

    fn linear(&self, name: &str, linear: &mut Linear) -> Result<(), String> {
        let [d_in, d_out] = linear.weight.dims();
        let weight = self.read(&format!("{name}.weight"), [d_out, d_in])?;
        linear.weight = Param::from_tensor(weight.transpose());
        linear.bias = Some(Param::from_tensor(
            self.read(&format!("{name}.bias"), [d_out])?,
        ));
        Ok(())
    }

    /// `LayerNorm.weight`/`bias`, or the older `gamma`/`beta`.
    fn norm(&self, name: &str, norm: &mut LayerNorm) -> Result<(), String> {
        let d = norm.gamma.dims()[0];
        let (scale, shift) = if self.has(&format!("{name}.gamma")) {
            ("gamma", "beta")
        } else {
            ("weight", "bias")
        };
        norm.gamma = Param::from_tensor(self.read(&format!("{name}.{scale}"), [d])?);
        norm.beta = Some(Param::from_tensor(
            self.read(&format!("{name}.{shift}"), [d])?,
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    fn fixture() -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bert")
    }

    /// The tiny BERT's checkpoint rewritten by `edit` (entries as name → (dtype, shape, bytes))
    /// into a temporary folder with its config, loaded.
    fn load_edited(
        edit: impl FnOnce(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>),
    ) -> Result<BertModel, AttentionError> {
        let bytes = std::fs::read(fixture().join("model.safetensors")).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let mut entries: Vec<_> = file
            .tensors()
            .into_iter()
            .map(|(name, v)| (name, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
            .collect();
        edit(&mut entries);
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            fixture().join("config.json"),
            dir.path().join("config.json"),
        )
        .unwrap();
        let views = entries.iter().map(|(name, dtype, shape, data)| {
            (
                name.clone(),
                TensorView::new(*dtype, shape.clone(), data).unwrap(),
            )
        });
        safetensors::serialize_to_file(views, &None, &dir.path().join("model.safetensors"))
            .unwrap();
        BertModel::from_pretrained(dir.path(), &Device::flex()).map(|(_, model)| model)
    }

    #[test]
    fn a_missing_tensor_is_named() {
        let err = load_edited(|e| e.retain(|(n, ..)| n != "encoder.layer.1.output.dense.bias"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model.safetensors") && err.contains("encoder.layer.1.output.dense.bias"),
            "{err}"
        );
    }

    #[test]
    fn a_misshapen_tensor_is_named() {
        let err = load_edited(|e| {
            let entry = e
                .iter_mut()
                .find(|(n, ..)| n == "embeddings.position_embeddings.weight")
                .unwrap();
            entry.2 = vec![8, 48]; // the same number of values, another shape
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("embeddings.position_embeddings.weight") && err.contains("[8, 48]"),
            "{err}"
        );
    }

    /// Task checkpoints (`BertForSequenceClassification`) prefix the encoder with `bert.` and
    /// add their head; they load the same weights.
    #[test]
    fn a_task_checkpoint_with_a_bert_prefix_loads() {
        let plain = load_edited(|_| {}).unwrap();
        let prefixed = load_edited(|e| {
            for entry in e.iter_mut() {
                entry.0 = format!("bert.{}", entry.0);
            }
            e.push((
                "classifier.weight".into(),
                safetensors::Dtype::F32,
                vec![2, 24],
                vec![0; 2 * 24 * 4],
            ));
        })
        .unwrap();
        let w = |m: &BertModel| m.layers[1].attention.w_v.weight.val().into_data();
        w(&plain).assert_eq(&w(&prefixed), true);
    }

    #[test]
    fn more_layers_in_the_file_than_the_config_is_an_error() {
        let err = load_edited(|e| {
            let extra: Vec<_> = e
                .iter()
                .filter(|(n, ..)| n.starts_with("encoder.layer.1."))
                .map(|(n, d, s, b)| (n.replace("layer.1.", "layer.2."), *d, s.clone(), b.clone()))
                .collect();
            e.extend(extra);
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("encoder.layer.2.") && err.contains("2 layers"),
            "{err}"
        );
    }

    #[test]
    fn configs_this_crate_cannot_build_name_the_key() {
        let config = std::fs::read_to_string(fixture().join("config.json")).unwrap();
        for (from, to, key) in [
            (
                r#""hidden_act": "gelu""#,
                r#""hidden_act": "relu""#,
                "hidden_act",
            ),
            (
                r#""model_type": "bert""#,
                r#""model_type": "gpt2""#,
                "model_type",
            ),
            (
                r#""num_attention_heads": 4"#,
                r#""num_attention_heads": 5"#,
                "n_heads",
            ),
            (
                r#""vocab_size": 50"#,
                r#""vocab_size": "fifty""#,
                "config.json",
            ),
        ] {
            assert!(config.contains(from), "{from}");
            let err = BertConfig::from_hf_json(&config.replace(from, to))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    /// A gate of 0 removes exactly that head: the same as zeroing its rows of the output
    /// projection (burn's `Linear` weight is `[in, out]`), in that layer only.
    #[test]
    fn a_zero_head_gate_removes_that_head_of_that_layer() {
        let device = Device::flex();
        let bert = BertConfig::new(30, 16, 2, 4, 32)
            .with_max_position_embeddings(8)
            .with_hidden_dropout_prob(0.0)
            .init(&device);
        let tokens = Tensor::<2, Int>::from_data([[5, 6, 7, 8]], &device);
        let gates = Tensor::<2>::from_data([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 1.0, 1.0]], &device);
        let gated = bert.forward_context(BertInput::new(tokens.clone()).head_gates(gates));
        let mut pruned = bert.clone();
        let w_o = &mut pruned.layers[1].attention.w_o;
        let d_v = 16 / 4;
        let weight = w_o
            .weight
            .val()
            .slice_assign([d_v..2 * d_v, 0..16], Tensor::zeros([d_v, 16], &device));
        w_o.weight = Param::from_tensor(weight);
        let expected = pruned
            .forward_context(BertInput::new(tokens.clone()))
            .hidden;
        gated.hidden.into_data().assert_approx_eq::<f32>(
            &expected.clone().into_data(),
            burn::tensor::Tolerance::absolute(1e-5),
        );
        let ungated = bert.forward_context(BertInput::new(tokens)).hidden;
        let moved = (ungated - expected).abs().max().into_scalar::<f32>();
        assert!(moved > 1e-4, "pruning a head changed nothing ({moved})");
    }

    /// Randomly initialised, the model runs and masks padding: the real tokens' hidden states
    /// do not depend on what the padded positions hold.
    #[test]
    fn padding_does_not_reach_the_real_tokens() {
        let device = Device::flex();
        let bert = BertConfig::new(30, 16, 2, 4, 32)
            .with_max_position_embeddings(8)
            .init(&device);
        let run = |pad: i64| {
            let tokens = Tensor::<2, Int>::from_data([[5, 6, 7, pad, pad]], &device);
            let padding =
                Tensor::<2, Bool>::from_data([[false, false, false, true, true]], &device);
            let out = bert.forward_context(BertInput::new(tokens).mask_padding(padding));
            out.hidden.narrow(1, 0, 3).into_data()
        };
        run(0).assert_approx_eq::<f32>(&run(9), burn::tensor::Tolerance::absolute(1e-6));
    }
}
