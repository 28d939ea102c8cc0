//! Sinusoidal positional encoding (Vaswani et al., 2017, §3.5).

use burn::prelude::*;

use crate::AttentionError;

/// Configuration of [`SinusoidalPositionalEncoding`].
#[derive(Config, Debug)]
pub struct SinusoidalPositionalEncodingConfig {
    /// Width of the encoded vectors; must be even.
    pub d_model: usize,
    /// Longest sequence the table covers. Default: `512`.
    #[config(default = 512)]
    pub max_len: usize,
    /// Base of the wavelengths. Default: `10000.0`.
    #[config(default = 10000.0)]
    pub base: f64,
}

impl SinusoidalPositionalEncodingConfig {
    /// Checks the values without building anything.
    pub fn validate(&self) -> Result<(), AttentionError> {
        if self.d_model == 0 || !self.d_model.is_multiple_of(2) {
            return Err(AttentionError::config(
                "d_model",
                format!(
                    "the sinusoidal table pairs sin and cos columns, so d_model must be even and > 0, got {}",
                    self.d_model
                ),
            ));
        }
        if self.max_len == 0 {
            return Err(AttentionError::config("max_len", "must be at least 1"));
        }
        if !(self.base.is_finite() && self.base > 1.0) {
            return Err(AttentionError::config(
                "base",
                format!("must be finite and > 1, got {}", self.base),
            ));
        }
        Ok(())
    }

    /// Builds the table on `device`.
    ///
    /// # Panics
    /// When [`validate`](Self::validate) fails; call it first to get the error as a value.
    pub fn init(&self, device: &Device) -> SinusoidalPositionalEncoding {
        if let Err(err) = self.validate() {
            panic!("SinusoidalPositionalEncodingConfig: {err}");
        }
        SinusoidalPositionalEncoding {
            table: sinusoid_table(self.max_len, self.d_model, self.base, device),
            max_len: self.max_len,
            d_model: self.d_model,
        }
    }
}

/// Adds `pe[p, 2i] = sin(p / base^(2i/d))`, `pe[p, 2i+1] = cos(p / base^(2i/d))` to its input.
///
/// The table is a constant: it is not trained and not stored in the module's record.
///
/// ```
/// use attention::SinusoidalPositionalEncodingConfig;
/// use burn::prelude::*;
///
/// let device = Device::flex();
/// let pe = SinusoidalPositionalEncodingConfig::new(16).with_max_len(64).init(&device);
/// let x = Tensor::<3>::zeros([2, 10, 16], &device);
/// let y = pe.forward(x); // [2, 10, 16]: row p of each sequence is the table's row p
/// assert_eq!(y.dims(), [2, 10, 16]);
/// // Position 0 of the second sequence: sin 0 = 0 and cos 0 = 1 in its first pair.
/// let first: Vec<f32> = y.slice([1..2, 0..1, 0..2]).into_data().try_into_vec_as::<f32>().unwrap();
/// assert_eq!(first, [0.0, 1.0]);
/// assert!(pe.try_forward(Tensor::<3>::zeros([1, 65, 16], &device)).is_err());
/// ```
#[derive(Module, Debug)]
pub struct SinusoidalPositionalEncoding {
    /// `[max_len, d_model]`
    pub table: Tensor<2>,
    /// Longest sequence the table covers.
    pub max_len: usize,
    /// Width of the encoded vectors.
    pub d_model: usize,
}

impl SinusoidalPositionalEncoding {
    /// # Shapes
    /// - input `[batch, len, d_model]` with `len <= max_len`
    /// - output `[batch, len, d_model]`
    ///
    /// # Panics
    /// With a message naming `len` and `max_len` (or the widths) when the input does not fit;
    /// [`try_forward`](Self::try_forward) returns that as an error.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.try_forward(x)
            .unwrap_or_else(|err| panic!("SinusoidalPositionalEncoding: {err}"))
    }

    /// [`forward`](Self::forward) with the shape checks returned as an error.
    pub fn try_forward(&self, x: Tensor<3>) -> Result<Tensor<3>, AttentionError> {
        let [_, len, d] = x.dims();
        if d != self.d_model || len > self.max_len {
            return Err(AttentionError::Shape {
                what: "positional encoding input",
                expected: format!(
                    "[batch, len <= max_len = {}, {}]",
                    self.max_len, self.d_model
                ),
                got: x.dims().to_vec(),
            });
        }
        let rows = self.table.clone().slice([0..len, 0..d]);
        Ok(x + rows.unsqueeze_dim::<3>(0))
    }

    /// Adds the table's row of each token's own position: texts packed into one row, each
    /// counting from 0 (`dataset::Packing::positions`).
    ///
    /// # Shapes
    /// input `[batch, len, d_model]`, positions `[batch, len]` (each below `max_len`) →
    /// `[batch, len, d_model]`
    pub fn forward_positions(
        &self,
        x: Tensor<3>,
        positions: Tensor<2, Int>,
    ) -> Result<Tensor<3>, AttentionError> {
        let [batch, len, d] = x.dims();
        if d != self.d_model || positions.dims() != [batch, len] {
            return Err(AttentionError::Shape {
                what: "positional encoding input and positions",
                expected: format!("[{batch}, {len}, {}] and [{batch}, {len}]", self.d_model),
                got: [x.dims().as_slice(), positions.dims().as_slice()].concat(),
            });
        }
        let rows = self
            .table
            .clone()
            .select(0, positions.reshape([batch * len]));
        Ok(x + rows.reshape([batch, len, d]))
    }
}

/// The table `[max_len, d_model]` itself, computed in f64 and stored as f32.
pub fn sinusoid_table(max_len: usize, d_model: usize, base: f64, device: &Device) -> Tensor<2> {
    let mut values = Vec::with_capacity(max_len * d_model);
    for p in 0..max_len {
        for j in 0..d_model {
            let pair = (j - j % 2) as f64; // 2i for both columns of a sin/cos pair
            let angle = p as f64 / base.powf(pair / d_model as f64);
            values.push(if j % 2 == 0 { angle.sin() } else { angle.cos() } as f32);
        }
    }
    Tensor::from_data(TensorData::new(values, [max_len, d_model]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_rows_match_the_formula() {
        let device = Device::flex();
        let table = sinusoid_table(3, 4, 10000.0, &device)
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        // p = 0: sin 0, cos 0 for both pairs.
        assert_eq!(&table[0..4], &[0.0, 1.0, 0.0, 1.0]);
        // p = 2, i = 1: angle 2 / 10000^(2/4) = 0.02.
        assert!((table[10] - 0.02f32.sin()).abs() < 1e-7);
        assert!((table[11] - 0.02f32.cos()).abs() < 1e-7);
    }

    #[test]
    fn odd_width_and_long_input_are_clear_errors() {
        let err = SinusoidalPositionalEncodingConfig::new(7)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("must be even"), "{err}");
        let device = Device::flex();
        let pe = SinusoidalPositionalEncodingConfig::new(4)
            .with_max_len(3)
            .init(&device);
        let err = pe
            .try_forward(Tensor::<3>::zeros([1, 4, 4], &device))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "shape mismatch for positional encoding input: expected [batch, len <= max_len = 3, 4], got [1, 4, 4]"
        );
    }

    #[test]
    fn per_token_positions_restart_each_packed_text() {
        let device = Device::flex();
        let pe = SinusoidalPositionalEncodingConfig::new(6)
            .with_max_len(8)
            .init(&device);
        let x = Tensor::<3>::random([1, 5, 6], burn::tensor::Distribution::Default, &device);
        // Two texts of 3 and 2 tokens in one row: each gets the table's rows 0.. as if alone.
        let positions = Tensor::<2, Int>::from_data([[0, 1, 2, 0, 1]], &device);
        let packed = pe.forward_positions(x.clone(), positions).unwrap();
        let alone = Tensor::cat(
            vec![
                pe.forward(x.clone().narrow(1, 0, 3)),
                pe.forward(x.clone().narrow(1, 3, 2)),
            ],
            1,
        );
        packed.into_data().assert_eq(&alone.into_data(), true);
        let wrong = Tensor::<2, Int>::zeros([1, 4], &device);
        assert!(pe.forward_positions(x, wrong).is_err());
    }
}
