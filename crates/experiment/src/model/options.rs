//! The classifier's hyperparameters ([`ModelOptions`], the `[model]` section) and where its
//! positions come from ([`Positions`]).

use attention::{AttentionPositions, QkNorm};

/// The classifier's hyperparameters: the `[model]` section of an experiment's TOML file and
/// the model flags of `experiment train`. A new hyperparameter is declared here once, with its
/// default, and checked by [`ClassifierConfig::validate`](super::ClassifierConfig::validate).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelOptions {
    /// Embedding and attention width. Default: 64.
    pub d_model: usize,
    /// Attention layers, each self-attention + residual + LayerNorm (post-LN, no feed-forward:
    /// the seed's block, repeated). Default: 1.
    pub layers: usize,
    /// Attention heads; 1 builds the single-head baseline with `d_k = d_v = d_model`, which has
    /// as many parameters as the multi-head model. Default: 4.
    pub heads: usize,
    /// Where positions come from: added to the input (`sinusoidal`, `learned`), inside the
    /// attention (`rope`, `alibi`, `relative`), or `none`. Default: sinusoidal.
    pub positions: Positions,
    /// Dropout after the embedding and before the output layer. Default: 0.1.
    pub dropout: f64,
    /// Dropout on the attention weights. Default: 0.0.
    pub attention_dropout: f64,
    /// Local attention: each token attends only to the tokens at most this many positions
    /// away (Longformer's local window); on flex the fused kernels skip the rest. Models from
    /// scratch only. Default: none (every token).
    pub window: Option<usize>,
    /// Soft-capping of the attention scores to (-cap, cap), `cap · tanh(s / cap)` (Gemma 2).
    /// Models from scratch only. Default: none.
    pub softcap: Option<f64>,
    /// Normalisation of each head's queries and keys before the scores: `rms` (Qwen3) or
    /// `layer`. Models from scratch only. Default: none.
    pub qk_norm: Option<QkNormKind>,
    /// Learned attention sinks (gpt-oss): a trained logit per head in every row's softmax, so
    /// a head can attend to nothing. Models from scratch only. Default: false.
    pub sinks: bool,
    /// Probability of dropping a whole token's embedding while training (the survivors are
    /// rescaled), a regulariser for small text datasets. Default: 0.0.
    pub token_dropout: f64,
    /// Standard deviation of the embedding initialisation. Default: 1.0 (burn's default).
    pub embedding_std: f64,
    /// Word vectors the embedding table starts from: a name `experiment fetch` knows
    /// (`glove-6b-50d`), found in `DATA_DIR/models/`, or a file (or folder) in GloVe's text
    /// format (word2vec and fastText text files too, `.gz` as well). The vectors are scaled so
    /// their components' standard deviation is `embedding_std`, the scale of the words without
    /// a vector (drawn as without vectors) and of the positional encodings. When their width is
    /// not d_model the table keeps it and a linear projection maps it to d_model. Models from
    /// scratch only. Default: none.
    pub embeddings: Option<String>,
    /// A pretrained encoder to fine-tune instead of a model from scratch: a name `experiment
    /// fetch` knows (`minilm-l6`), found in `DATA_DIR/models/`, or a folder holding a BERT
    /// checkpoint (`config.json`, `model.safetensors`, `tokenizer.json`). Its config then
    /// decides d_model, layers, heads and positions, and its tokenizer the ids. Default: none.
    pub encoder: Option<String>,
    /// How a pretrained encoder's states become one vector: `cls` (the `[CLS]` token through
    /// the checkpoint's pooler, as BERT fine-tuning does) or `mean` (over the real tokens, as
    /// sentence-transformers do and as the models from scratch always do). Default: mean.
    pub pooling: Pooling,
    /// Train the classification head alone, the pretrained encoder frozen (a linear probe).
    /// Default: false.
    pub freeze_encoder: bool,
    /// Keep the word-embedding table as it is and train the rest: a pretrained encoder's (the
    /// largest tensor: 30,522 × 384 in MiniLM), or the one `embeddings` starts a model from
    /// scratch from (Kim's "static" word vectors; the projection, if any, still trains).
    /// Default: false.
    pub freeze_embeddings: bool,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            d_model: 64,
            layers: 1,
            heads: 4,
            positions: Positions::Sinusoidal,
            dropout: 0.1,
            attention_dropout: 0.0,
            window: None,
            softcap: None,
            qk_norm: None,
            sinks: false,
            token_dropout: 0.0,
            embedding_std: 1.0,
            embeddings: None,
            encoder: None,
            pooling: Pooling::Mean,
            freeze_encoder: false,
            freeze_embeddings: false,
        }
    }
}

/// Which qk-norm ([`attention::QkNorm`]) the attention layers use.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum QkNormKind {
    /// RMSNorm, epsilon 1e-6 (Qwen3).
    Rms,
    /// LayerNorm, epsilon 1e-5.
    Layer,
}

impl QkNormKind {
    /// The attention crate's setting.
    pub fn in_attention(self) -> QkNorm {
        match self {
            Self::Rms => QkNorm::rms(),
            Self::Layer => QkNorm::layer(),
        }
    }
}

/// How a pretrained encoder's hidden states are pooled into one vector per text.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The `[CLS]` token's state, through the checkpoint's pooler (`tanh(Linear)`) if it has one.
    Cls,
    /// The mean over the real tokens.
    #[default]
    Mean,
}

/// How the classifier encodes token positions.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Positions {
    /// No positions: attention sees a bag of tokens.
    None,
    /// The fixed sin/cos table of *Attention Is All You Need*, added to the embeddings.
    #[default]
    Sinusoidal,
    /// A trained vector per position, added to the embeddings (BERT, GPT-2).
    Learned,
    /// Rotary embeddings of each head's queries and keys (RoPE).
    Rope,
    /// ALiBi's per-head linear distance bias on the scores.
    Alibi,
    /// T5's learned per-head relative position bias on the scores.
    Relative,
}

impl Positions {
    /// The attention crate's scheme for positions inside attention.
    pub(super) fn in_attention(self) -> AttentionPositions {
        match self {
            Self::Rope => AttentionPositions::rope(),
            Self::Alibi => AttentionPositions::Alibi,
            Self::Relative => AttentionPositions::relative(),
            Self::None | Self::Sinusoidal | Self::Learned => AttentionPositions::None,
        }
    }

    /// What 0.1's only position switch, `pe = true|false`, meant.
    pub fn from_pe(pe: bool) -> Self {
        if pe { Self::Sinusoidal } else { Self::None }
    }
}

/// The name used in flags, files and run names (clap's, which serde's `lowercase` matches).
fn value_name(value: &impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .expect("no skipped variants")
        .get_name()
        .to_string()
}

impl std::fmt::Display for Positions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&value_name(self))
    }
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&value_name(self))
    }
}
