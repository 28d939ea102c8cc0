//! The fine-tuned classifier: a pretrained BERT-family encoder ([`attention::BertModel`]), pooled
//! (`[CLS]` through the checkpoint's pooler, or the mean of the real tokens), dropout, linear.

use std::path::Path;

use attention::{BertConfig, BertInput, BertModel};
use burn::{
    nn::{Dropout, DropoutConfig, Linear, LinearConfig},
    prelude::*,
};

use super::Pooling;

/// A BERT-family encoder with a linear classification head.
#[derive(Module, Debug)]
pub struct PretrainedClassifier {
    encoder: BertModel,
    dropout: Dropout,
    output: Linear,
    #[module(skip)]
    pooling: Pooling,
    /// A linear probe: the encoder's output is detached, so no gradient reaches it whatever
    /// its parameters' flags say after a checkpoint is loaded into them.
    #[module(skip)]
    frozen: bool,
}

impl PretrainedClassifier {
    /// A randomly initialised model of `bert`'s shape (weights come from a record or
    /// [`load_pretrained`](Self::load_pretrained)). `[CLS]` pooling keeps the pooler; mean
    /// pooling has none, so both kinds' records hold exactly what they use.
    pub fn init(
        bert: &BertConfig,
        n_classes: usize,
        pooling: Pooling,
        dropout: f64,
        device: &Device,
    ) -> Self {
        let mut encoder = bert.init(device);
        if pooling == Pooling::Mean {
            encoder.pooler = None;
        }
        Self {
            encoder,
            dropout: DropoutConfig::new(dropout).init(),
            output: LinearConfig::new(bert.hidden_size, n_classes).init(device),
            pooling,
            frozen: false,
        }
    }

    /// The encoder's weights from the checkpoint `dir/model.safetensors` (the head stays as
    /// initialised). A checkpoint without a pooler keeps the initialised one for `[CLS]` pooling.
    pub fn load_pretrained(mut self, dir: &Path) -> Result<Self, attention::AttentionError> {
        // The loader drops the pooler when the checkpoint has none; keep the initialised one.
        let pooler = self.encoder.pooler.clone();
        self.encoder = self
            .encoder
            .load_hf_safetensors(dir.join("model.safetensors"))?;
        if pooler.is_some() && self.encoder.pooler.is_none() {
            eprintln!(
                "note: {}: no pooler in the checkpoint; [CLS] pooling trains a new one",
                dir.display()
            );
            self.encoder.pooler = pooler;
        }
        Ok(self)
    }

    /// The encoder frozen (no gradients, no dropout): only the head trains (a linear probe).
    pub fn freeze_encoder(mut self) -> Self {
        // `freeze` also stops the encoder's dropout: the probe reads fixed features.
        self.encoder = self.encoder.freeze();
        self.frozen = true;
        self
    }

    /// The word-embedding table frozen; the rest of the encoder trains.
    pub fn freeze_embeddings(mut self) -> Self {
        self.encoder.embeddings.word = self.encoder.embeddings.word.freeze();
        self
    }

    /// The encoder.
    pub fn encoder(&self) -> &BertModel {
        &self.encoder
    }

    /// Encoder layers.
    pub fn layers(&self) -> usize {
        self.encoder.layers.len()
    }

    /// Heads per layer.
    pub fn heads(&self) -> usize {
        self.encoder
            .layers
            .first()
            .map_or(0, |layer| layer.attention.n_heads)
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.output.weight.dims()[1]
    }

    /// Logits and, with `with_weights`, every layer's attention; `gates` scale each head's
    /// context (0 prunes it).
    ///
    /// # Shapes
    /// - tokens and padding mask `[batch, len]` (`true` = padding), gates `[layers, heads]`
    /// - logits `[batch, n_classes]`, weights `layers × [batch, heads, len, len]`
    pub fn run(
        &self,
        tokens: Tensor<2, Int>,
        mask_padding: Tensor<2, Bool>,
        with_weights: bool,
        gates: Option<Tensor<2>>,
    ) -> (Tensor<2>, Vec<Tensor<4>>) {
        let mut input = BertInput::new(tokens).mask_padding(mask_padding.clone());
        input.head_gates = gates;
        let out = if with_weights {
            self.encoder.forward(input)
        } else {
            self.encoder.forward_context(input)
        };
        let mut out = out;
        if self.frozen {
            out.hidden = out.hidden.detach();
            out.pooled = out.pooled.map(Tensor::detach);
        }
        let [batch, _, d] = out.hidden.dims();
        let pooled = match (self.pooling, out.pooled) {
            (Pooling::Cls, Some(pooled)) => pooled,
            (Pooling::Cls, None) => out.hidden.narrow(1, 0, 1).reshape([batch, d]),
            (Pooling::Mean, _) => super::masked_mean(out.hidden, mask_padding),
        };
        let logits = self.output.forward(self.dropout.forward(pooled));
        (logits, out.weights)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> BertConfig {
        BertConfig::new(30, 8, 2, 2, 16).with_max_position_embeddings(16)
    }

    #[test]
    fn both_poolings_classify_and_padding_changes_nothing() {
        let device = Device::flex();
        for pooling in [Pooling::Cls, Pooling::Mean] {
            let model = PretrainedClassifier::init(&tiny(), 3, pooling, 0.1, &device);
            assert_eq!(model.encoder.pooler.is_some(), pooling == Pooling::Cls);
            assert_eq!((model.layers(), model.heads(), model.classes()), (2, 2, 3));
            let tokens = Tensor::<2, Int>::from_data([[2, 5, 6, 3, 0, 0]], &device);
            let (padded, weights) = model.run(tokens.clone(), tokens.equal_elem(0), true, None);
            assert_eq!(padded.dims(), [1, 3]);
            assert_eq!(weights.len(), 2);
            assert_eq!(weights[1].dims(), [1, 2, 6, 6]);
            let tokens = Tensor::<2, Int>::from_data([[2, 5, 6, 3]], &device);
            let (unpadded, _) = model.run(tokens.clone(), tokens.equal_elem(0), false, None);
            let diff = (padded - unpadded).abs().max().into_scalar::<f32>();
            assert!(
                diff < 1e-5,
                "{pooling:?}: padding changed the logits by {diff}"
            );
        }
    }

    #[test]
    fn a_frozen_encoder_gets_no_gradient_and_the_head_does() {
        let device = Device::flex().autodiff();
        let model =
            PretrainedClassifier::init(&tiny(), 2, Pooling::Cls, 0.0, &device).freeze_encoder();
        let tokens = Tensor::<2, Int>::from_data([[2, 5, 3]], &device);
        let (logits, _) = model.run(tokens.clone(), tokens.clone().equal_elem(0), false, None);
        let grads = logits.sum().backward();
        let word = model.encoder.embeddings.word.weight.val();
        assert!(
            word.grad(&grads).is_none(),
            "the frozen encoder has a gradient"
        );
        assert!(model.output.weight.val().grad(&grads).is_some());

        let model =
            PretrainedClassifier::init(&tiny(), 2, Pooling::Mean, 0.0, &device).freeze_embeddings();
        let (logits, _) = model.run(tokens.clone(), tokens.clone().equal_elem(0), false, None);
        let grads = logits.sum().backward();
        let embeddings = &model.encoder.embeddings;
        assert!(embeddings.word.weight.val().grad(&grads).is_none());
        assert!(embeddings.position.weight.val().grad(&grads).is_some());
        let model = model.freeze_encoder();

        // Parameters that ask for gradients again (a checkpoint loaded into them) get none.
        let mut thawed = model.clone();
        thawed.encoder = thawed.encoder.unfreeze();
        let (logits, _) = thawed.run(tokens.clone(), tokens.equal_elem(0), false, None);
        let grads = logits.sum().backward();
        let word = thawed.encoder.embeddings.word.weight.val();
        assert!(word.is_require_grad(), "thawed");
        assert!(
            word.grad(&grads).is_none(),
            "the detached encoder has a gradient"
        );
    }
}
