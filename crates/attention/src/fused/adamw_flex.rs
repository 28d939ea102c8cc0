//! The flex kernel of [`FusedAdamW`](super::FusedAdamW) (f32): each element's moments and
//! parameter in one pass, blocks of 32 Ki elements over `rayon`, the moments in place.

use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use super::pointwise_flex::{TASK, owned, tensor, values};

/// One step's constants.
#[derive(Clone, Copy, Debug)]
pub(super) struct Step {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub lr: f32,
    /// `1 − lr · weight_decay`; `None` without decay.
    pub decay: Option<f32>,
    /// `1 − β₁ᵗ` and `1 − β₂ᵗ`.
    pub bias_1: f32,
    pub bias_2: f32,
}

/// The parameter after the step and both moments: `p`, `g` and the moments have one shape;
/// moments `None` on the first step (zeros). The moments are updated in place when no one else
/// holds them; the parameter always goes to a new buffer (the learner's model shares it).
pub(super) fn adamw(
    p: FlexTensor,
    g: FlexTensor,
    moments: Option<(FlexTensor, FlexTensor)>,
    step: Step,
) -> [FlexTensor; 3] {
    let shape = p.layout().shape().clone();
    let (p, g) = (p.to_contiguous(), g.to_contiguous());
    let (ps, gs) = (values(&p), values(&g));
    let (mut m, mut v) = match moments {
        Some((m, v)) => (owned(m), owned(v)),
        None => (
            tensor(vec![0.0; ps.len()], shape.clone()),
            tensor(vec![0.0; ps.len()], shape.clone()),
        ),
    };
    let mut out = vec![0f32; ps.len()];
    out.par_chunks_mut(TASK)
        .zip(m.storage_mut::<f32>().par_chunks_mut(TASK))
        .zip(v.storage_mut::<f32>().par_chunks_mut(TASK))
        .zip(ps.par_chunks(TASK).zip(gs.par_chunks(TASK)))
        .for_each(|(((out, m), v), (p, g))| block(out, m, v, p, g, step));
    [tensor(out, shape), m, v]
}

/// burn's AdamW's f32 operations, in its order, per element.
fn block(out: &mut [f32], m: &mut [f32], v: &mut [f32], p: &[f32], g: &[f32], s: Step) {
    let (factor_1, factor_2) = (1.0 - s.beta_1, 1.0 - s.beta_2);
    for i in 0..out.len() {
        let (gi, pi) = (g[i], p[i]);
        let mi = m[i] * s.beta_1 + gi * factor_1;
        let vi = v[i] * s.beta_2 + gi * gi * factor_2;
        m[i] = mi;
        v[i] = vi;
        let delta = (mi / s.bias_1) / ((vi / s.bias_2).sqrt() + s.epsilon);
        let decayed = match s.decay {
            Some(d) => pi * d,
            None => pi,
        };
        out[i] = decayed - delta * s.lr;
    }
}
