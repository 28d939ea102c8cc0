//! The classifier's hyperparameters ([`ModelOptions`], the `[model]` section) and where its
//! positions come from ([`Positions`]).

use attention::AttentionPositions;

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
    /// Probability of dropping a whole token's embedding while training (the survivors are
    /// rescaled), a regulariser for small text datasets. Default: 0.0.
    pub token_dropout: f64,
    /// Standard deviation of the embedding initialisation. Default: 1.0 (burn's default).
    pub embedding_std: f64,
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
            token_dropout: 0.0,
            embedding_std: 1.0,
        }
    }
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
impl std::fmt::Display for Positions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum;
        f.write_str(
            self.to_possible_value()
                .expect("no skipped variants")
                .get_name(),
        )
    }
}
