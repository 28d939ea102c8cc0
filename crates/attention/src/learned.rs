//! Learned absolute positions (BERT, GPT-2): a trained vector per position, added to the input.

use burn::{
    nn::{Embedding, EmbeddingConfig, Initializer},
    prelude::*,
};

use crate::AttentionError;

/// Configuration of [`LearnedPositionalEmbedding`].
#[derive(Config, Debug)]
pub struct LearnedPositionalEmbeddingConfig {
    /// Width of the vectors.
    pub d_model: usize,
    /// Positions covered. Default: `512`.
    #[config(default = 512)]
    pub max_len: usize,
    /// Initializer of the table. Default: `N(0, 0.02)`, as GPT-2 and BERT.
    #[config(default = "Initializer::Normal{mean: 0.0, std: 0.02}")]
    pub initializer: Initializer,
}

impl LearnedPositionalEmbeddingConfig {
    /// Checks the values without building anything.
    pub fn validate(&self) -> Result<(), AttentionError> {
        if self.d_model == 0 {
            return Err(AttentionError::config("d_model", "must be at least 1"));
        }
        if self.max_len == 0 {
            return Err(AttentionError::config("max_len", "must be at least 1"));
        }
        Ok(())
    }

    /// Builds the table on `device`.
    ///
    /// # Panics
    /// When [`validate`](Self::validate) fails; call it first to get the error as a value.
    pub fn init(&self, device: &Device) -> LearnedPositionalEmbedding {
        if let Err(err) = self.validate() {
            panic!("LearnedPositionalEmbeddingConfig: {err}");
        }
        LearnedPositionalEmbedding {
            embedding: EmbeddingConfig::new(self.max_len, self.d_model)
                .with_initializer(self.initializer.clone())
                .init(device),
        }
    }
}

/// Adds a learned vector per position to its input.
///
/// ```
/// use attention::LearnedPositionalEmbeddingConfig;
/// use burn::prelude::*;
///
/// let device = Device::flex();
/// let positions = LearnedPositionalEmbeddingConfig::new(8).with_max_len(16).init(&device);
/// let x = Tensor::<3>::zeros([2, 5, 8], &device);
/// let y = positions.forward(x); // [2, 5, 8]: row p of each sequence is the table's row p
/// let table = positions.embedding.weight.val().narrow(0, 0, 5).unsqueeze_dim::<3>(0);
/// assert_eq!(y.clone().narrow(0, 1, 1).into_data(), table.into_data());
/// assert!(positions.try_forward_at(Tensor::<3>::zeros([1, 4, 8], &device), 13).is_err());
/// ```
#[derive(Module, Debug)]
pub struct LearnedPositionalEmbedding {
    /// `[max_len, d_model]`.
    pub embedding: Embedding,
}

impl LearnedPositionalEmbedding {
    /// # Shapes
    /// input `[batch, len, d_model]` with `len <= max_len` → `[batch, len, d_model]`
    ///
    /// # Panics
    /// When the input does not fit; [`try_forward_at`](Self::try_forward_at) returns an error.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.try_forward_at(x, 0)
            .unwrap_or_else(|err| panic!("LearnedPositionalEmbedding: {err}"))
    }

    /// Adds the rows of positions `offset..offset + len` (a decoder's next tokens), or the
    /// error naming the shapes when they are not in the table.
    pub fn try_forward_at(&self, x: Tensor<3>, offset: usize) -> Result<Tensor<3>, AttentionError> {
        let [max_len, d_model] = self.embedding.weight.dims();
        let [_, len, d] = x.dims();
        if d != d_model || offset + len > max_len {
            return Err(AttentionError::Shape {
                what: "learned positions input",
                expected: format!(
                    "[batch, offset {offset} + len <= max_len = {max_len}, {d_model}]"
                ),
                got: x.dims().to_vec(),
            });
        }
        let rows = self.embedding.weight.val().narrow(0, offset, len);
        Ok(x + rows.unsqueeze_dim::<3>(0))
    }

    /// Adds the row of each token's own position: texts packed into one row, each counting
    /// from 0 (`dataset::Packing::positions`).
    ///
    /// # Shapes
    /// input `[batch, len, d_model]`, positions `[batch, len]` (each below `max_len`) →
    /// `[batch, len, d_model]`
    pub fn forward_positions(
        &self,
        x: Tensor<3>,
        positions: Tensor<2, Int>,
    ) -> Result<Tensor<3>, AttentionError> {
        let [_, d_model] = self.embedding.weight.dims();
        let [batch, len, d] = x.dims();
        if d != d_model || positions.dims() != [batch, len] {
            return Err(AttentionError::Shape {
                what: "learned positions input and positions",
                expected: format!("[{batch}, {len}, {d_model}] and [{batch}, {len}]"),
                got: [x.dims().as_slice(), positions.dims().as_slice()].concat(),
            });
        }
        Ok(x + self.embedding.forward(positions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_pick_later_rows_and_gradients_reach_the_table() {
        let device = Device::flex().autodiff();
        let positions = LearnedPositionalEmbeddingConfig::new(2)
            .with_max_len(4)
            .init(&device);
        let x = Tensor::<3>::zeros([1, 2, 2], &device);
        let y = positions.try_forward_at(x, 2).unwrap();
        let table = positions.embedding.weight.val().narrow(0, 2, 2);
        assert_eq!(
            y.clone().into_data(),
            table.unsqueeze_dim::<3>(0).into_data()
        );
        let grads = y.sum().backward();
        let grad = positions.embedding.weight.grad(&grads).unwrap();
        let grad: Vec<f32> = grad.into_data().try_into_vec_as::<f32>().unwrap();
        // Only rows 2 and 3 were used.
        assert_eq!(grad, [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn per_token_positions_restart_each_packed_text() {
        let device = Device::flex();
        let positions = LearnedPositionalEmbeddingConfig::new(3)
            .with_max_len(8)
            .init(&device);
        let x = Tensor::<3>::random([2, 4, 3], burn::tensor::Distribution::Default, &device);
        let ids = Tensor::<2, Int>::from_data([[0, 1, 0, 1], [0, 1, 2, 3]], &device);
        let packed = positions.forward_positions(x.clone(), ids).unwrap();
        let alone = Tensor::cat(
            vec![
                positions.forward(x.clone().slice([0..1, 0..2])),
                positions.forward(x.clone().slice([0..1, 2..4])),
            ],
            1,
        );
        let plain = positions.forward(x.clone().narrow(0, 1, 1));
        packed
            .clone()
            .narrow(0, 0, 1)
            .into_data()
            .assert_eq(&alone.into_data(), true);
        packed
            .narrow(0, 1, 1)
            .into_data()
            .assert_eq(&plain.into_data(), true);
        let wrong = Tensor::<2, Int>::zeros([2, 3], &device);
        assert!(positions.forward_positions(x, wrong).is_err());
    }
}
