//! The fused op's native flex kernels (f32): FlashAttention-2 on the CPU.
//!
//! Forward, per (batch, head), `rayon` over them: key tiles of [`TILE`] columns, all query
//! rows at once; `S = Q·Kᵀ` and `O += P·V` are `gemm` calls (the crate burn-flex multiplies
//! with), the online softmax runs row by row in between. Each row's log-sum-exp is kept.
//!
//! Backward, per (batch, key/value head): for each key tile and each query head of its group,
//! `P = exp(S − lse)`, `dV += Pᵀ·dO`, `dP = dO·Vᵀ`, `dS = P ∘ (dP − D)`, `dQ += dS·K`,
//! `dK += dSᵀ·Q`, five `gemm` calls, scratch of two `[l_q, TILE]` blocks. A task owns its dQ,
//! dK and dV, so nothing is shared between threads; a bias gradient broadcast over the batch
//! or the heads is accumulated by one task per slot of the bias.
//!
//! Other float types go through the chunked tensor-op kernels.

use burn::{
    backend::{Flex, flex::FlexTensor, tensor::FloatTensor},
    tensor::{DType, TensorData},
};
use rayon::prelude::*;

use super::{DropoutMask, KernelGrads, KernelInputs, Saved, chunked};
use crate::mask_mod::{BlockKind, BlockMask};
use crate::score_mod::ScoreMod;

/// Key columns per tile: a `[l_q, TILE]` score block and a `[TILE, d]` key block stay in L2.
const TILE: usize = 64;

/// Lowest finite f32: the log-sum-exp of a row whose keys are all masked.
const LOWEST: f32 = f32::MIN;

/// q, k and v contiguous (they arrive as views of `[batch, l, heads, d]`).
pub(super) fn prepare(inputs: KernelInputs<Flex>) -> KernelInputs<Flex> {
    KernelInputs {
        query: inputs.query.to_contiguous(),
        key: inputs.key.to_contiguous(),
        value: inputs.value.to_contiguous(),
        ..inputs
    }
}

pub(super) fn forward(inputs: KernelInputs<Flex>) -> (FloatTensor<Flex>, FloatTensor<Flex>) {
    if !all_f32(&inputs) {
        return chunked::forward::<Flex>(inputs);
    }
    let x = Problem::new(&inputs);
    let operands = Operands::new(&inputs, &x);
    let tiles = Tiles::new(&x, inputs.pattern.block_mask());

    let mut output = vec![0f32; x.batch * x.heads * x.l_q * x.d_v];
    let mut lse = vec![0f32; x.batch * x.heads * x.l_q];
    if x.l_q > 0 && x.d_v > 0 {
        // One task per (batch, head, query block): its rows of the output and log-sum-exp.
        let mut tasks = Vec::with_capacity(x.batch * x.heads * tiles.n_q);
        for (bh, (out, lse)) in output
            .chunks_mut(x.l_q * x.d_v)
            .zip(lse.chunks_mut(x.l_q))
            .enumerate()
        {
            let blocks = out
                .chunks_mut(tiles.rows * x.d_v)
                .zip(lse.chunks_mut(tiles.rows));
            for (qb, (out, lse)) in blocks.enumerate() {
                tasks.push((bh, qb, out, lse));
            }
        }
        tasks.into_par_iter().for_each_init(
            || vec![0f32; tiles.rows * tiles.width],
            |scores, (bh, qb, out, lse)| {
                let head = operands.head(bh / x.heads, bh % x.heads);
                forward_block(&x, &head, &tiles, qb, out, lse, scores);
            },
        );
    }
    (
        tensor(output, [x.batch, x.heads, x.l_q, x.d_v]),
        tensor(lse, [x.batch, x.heads, x.l_q]),
    )
}

pub(super) fn backward(
    saved: Saved<Flex>,
    grad_output: FloatTensor<Flex>,
    bias_grad: bool,
) -> KernelGrads<Flex> {
    if !all_f32(&saved.inputs) || grad_output.dtype() != DType::F32 {
        return chunked::backward::<Flex>(saved, grad_output, bias_grad);
    }
    let x = Problem::new(&saved.inputs);
    let tiles = Tiles::new(&x, saved.inputs.pattern.block_mask());
    // One task per (batch, key/value head): its query heads' dQ, its dK and dV.
    let work = Tasks {
        tiles: &tiles,
        operands: Operands::new(&saved.inputs, &x),
        saved: [
            F32::new(&saved.output),
            F32::new(&grad_output),
            F32::new(&saved.lse),
        ],
    };
    // The bias's dims, when its gradient is wanted.
    let bias_grad = work
        .operands
        .bias
        .as_ref()
        .filter(|_| bias_grad)
        .map(|b| b.dims);
    let (q_len, k_len, v_len) = (x.group * x.l_q * x.d_k, x.l_k * x.d_k, x.l_k * x.d_v);
    let mut dq = vec![0f32; x.batch * x.heads * x.l_q * x.d_k];
    let mut dk = vec![0f32; x.batch * x.kv_heads * x.l_k * x.d_k];
    let mut dv = vec![0f32; x.batch * x.kv_heads * x.l_k * x.d_v];
    let mut d_bias = bias_grad.map(|dims| vec![0f32; dims.iter().product()]);
    if q_len == 0 || k_len == 0 || v_len == 0 {
        // Nothing to compute; the gradients are empty or zero.
    } else if let Some(dims) = bias_grad {
        // Tasks that write the same slot of the bias gradient run in one job, one after
        // another, into buffers of their own that are copied into place afterwards.
        let mut jobs: Vec<Vec<(usize, usize)>> = Vec::new();
        let mut job_of = std::collections::HashMap::new();
        for b in 0..x.batch {
            for kv in 0..x.kv_heads {
                let key = (
                    if dims[0] > 1 { b } else { 0 },
                    if dims[1] > 1 { kv } else { 0 },
                );
                let index = *job_of.entry(key).or_insert_with(|| {
                    jobs.push(Vec::new());
                    jobs.len() - 1
                });
                jobs[index].push((b, kv));
            }
        }
        let slot_heads = if dims[1] > 1 { x.group } else { 1 };
        let slot_len = dims[2] * dims[3];
        let results: Vec<JobResult> = jobs
            .into_par_iter()
            .map(|tasks| {
                let mut scratch = Scratch::new(&x, &tiles);
                let mut d_bias = vec![0f32; slot_heads * slot_len];
                let tasks = tasks
                    .into_iter()
                    .map(|(b, kv)| {
                        let mut own = (vec![0f32; q_len], vec![0f32; k_len], vec![0f32; v_len]);
                        let out = GroupGrads {
                            dq: &mut own.0,
                            dk: &mut own.1,
                            dv: &mut own.2,
                        };
                        let slots = BiasSlots {
                            data: &mut d_bias,
                            per_head: dims[1] > 1,
                            len: slot_len,
                            row: if dims[2] > 1 { dims[3] } else { 0 },
                            col: usize::from(dims[3] > 1),
                        };
                        work.run(b, kv, out, Some(slots), &mut scratch);
                        (b, kv, own)
                    })
                    .collect();
                JobResult { tasks, d_bias }
            })
            .collect();
        let full = d_bias.as_mut().expect("a bias gradient");
        for job in results {
            let (b, kv) = (job.tasks[0].0, job.tasks[0].1);
            for (b, kv, (own_q, own_k, own_v)) in job.tasks {
                let t = b * x.kv_heads + kv;
                dq[t * q_len..(t + 1) * q_len].copy_from_slice(&own_q);
                dk[t * k_len..(t + 1) * k_len].copy_from_slice(&own_k);
                dv[t * v_len..(t + 1) * v_len].copy_from_slice(&own_v);
            }
            let b = if dims[0] > 1 { b } else { 0 };
            let h = if dims[1] > 1 { kv * x.group } else { 0 };
            let start = (b * dims[1] + h) * slot_len;
            full[start..start + job.d_bias.len()].copy_from_slice(&job.d_bias);
        }
    } else {
        // Task t = b·kv_heads + kv owns the t-th block of dQ, dK and dV: written in place.
        dq.par_chunks_mut(q_len)
            .zip(dk.par_chunks_mut(k_len))
            .zip(dv.par_chunks_mut(v_len))
            .enumerate()
            .for_each_init(
                || Scratch::new(&x, &tiles),
                |scratch, (t, ((dq, dk), dv))| {
                    let out = GroupGrads { dq, dk, dv };
                    work.run(t / x.kv_heads, t % x.kv_heads, out, None, scratch);
                },
            );
    }
    KernelGrads {
        query: tensor(dq, [x.batch, x.heads, x.l_q, x.d_k]),
        key: tensor(dk, [x.batch, x.kv_heads, x.l_k, x.d_k]),
        value: tensor(dv, [x.batch, x.kv_heads, x.l_k, x.d_v]),
        bias: d_bias.zip(bias_grad).map(|(data, dims)| tensor(data, dims)),
    }
}

/// The inputs of one call, read one head at a time.
struct Operands<'a> {
    x: &'a Problem,
    q: F32,
    k: F32,
    v: F32,
    mask: Option<Broadcast>,
    bias: Option<Broadcast>,
    dropout: Option<DropoutMask>,
    score: Option<std::sync::Arc<dyn ScoreMod>>,
}

impl<'a> Operands<'a> {
    fn new(inputs: &KernelInputs<Flex>, x: &'a Problem) -> Self {
        Self {
            x,
            q: F32::new(&inputs.query),
            k: F32::new(&inputs.key),
            v: F32::new(&inputs.value),
            mask: inputs.mask.as_ref().map(|m| Broadcast::new(m, x)),
            bias: inputs.bias.as_ref().map(|b| Broadcast::new(b, x)),
            dropout: inputs.dropout,
            score: inputs.pattern.shared_score(),
        }
    }

    /// Query head `h` of batch `b`, with its key/value head.
    fn head(&self, b: usize, h: usize) -> Head<'_> {
        let x = self.x;
        let kv = h / x.group;
        Head {
            batch: b,
            index: h,
            score: self.score.as_deref(),
            q: self.q.head(b, h, x.l_q * x.d_k),
            k: self.k.head(b, kv, x.l_k * x.d_k),
            v: self.v.head(b, kv, x.l_k * x.d_v),
            mask: self.mask.as_ref().map(|m| m.mask_plane(b, h)),
            bias: self.bias.as_ref().map(|m| m.bias_plane(b, h)),
            dropout: self.dropout.map(|mask| HeadDropout {
                mask,
                first_row: ((b * x.heads + h) * x.l_q) as u64,
            }),
        }
    }
}

/// What every backward task reads.
struct Tasks<'a> {
    tiles: &'a Tiles<'a>,
    operands: Operands<'a>,
    /// the output, its gradient, the log-sum-exp
    saved: [F32; 3],
}

impl Tasks<'_> {
    /// The gradients of batch `b`'s key/value head `kv` and its query heads.
    fn run(
        &self,
        b: usize,
        kv: usize,
        out: GroupGrads,
        slots: Option<BiasSlots>,
        scratch: &mut Scratch,
    ) {
        let x = self.operands.x;
        let [o, d_o, lse] = &self.saved;
        let group = kv * x.group..(kv + 1) * x.group;
        let heads: Vec<Head> = group.clone().map(|h| self.operands.head(b, h)).collect();
        let saved = SavedHeads {
            o: group.clone().map(|h| o.head(b, h, x.l_q * x.d_v)).collect(),
            d_o: group
                .clone()
                .map(|h| d_o.head(b, h, x.l_q * x.d_v))
                .collect(),
            lse: group.map(|h| lse.head(b, h, x.l_q)).collect(),
        };
        backward_group(x, self.tiles, &heads, &saved, slots, scratch, out);
    }
}

/// The sizes of one call.
struct Problem {
    batch: usize,
    heads: usize,
    kv_heads: usize,
    group: usize,
    l_q: usize,
    l_k: usize,
    d_k: usize,
    d_v: usize,
    scale: f32,
    /// The scores' soft-cap.
    softcap: Option<f32>,
}

impl Problem {
    fn new(inputs: &KernelInputs<Flex>) -> Self {
        let dims = |t: &FlexTensor| {
            let s = t.layout().shape();
            [s[0], s[1], s[2], s[3]]
        };
        let [batch, heads, l_q, d_k] = dims(&inputs.query);
        let [_, kv_heads, l_k, _] = dims(&inputs.key);
        let d_v = dims(&inputs.value)[3];
        Self {
            batch,
            heads,
            kv_heads,
            group: heads / kv_heads,
            l_q,
            l_k,
            d_k,
            d_v,
            scale: inputs.scale as f32,
            softcap: inputs.pattern.softcap().map(|cap| cap as f32),
        }
    }
}

fn all_f32(inputs: &KernelInputs<Flex>) -> bool {
    [&inputs.query, &inputs.key, &inputs.value]
        .into_iter()
        .chain(&inputs.bias)
        .all(|t| t.dtype() == DType::F32)
}

fn tensor<const D: usize>(data: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

/// A contiguous f32 tensor `[batch, heads, …]` read one head at a time.
struct F32 {
    tensor: FlexTensor,
    start: usize,
    heads: usize,
}

impl F32 {
    fn new(t: &FlexTensor) -> Self {
        let tensor = t.to_contiguous();
        let start = tensor.layout().start_offset();
        let heads = tensor.layout().shape()[1];
        Self {
            tensor,
            start,
            heads,
        }
    }

    /// Head `h` of batch `b`, `len` values.
    fn head(&self, b: usize, h: usize, len: usize) -> &[f32] {
        let start = self.start + (b * self.heads + h) * len;
        &self.tensor.storage::<f32>()[start..start + len]
    }
}

/// A mask or bias at its own shape, each dimension the call's or 1 (broadcast, stride 0).
struct Broadcast {
    tensor: FlexTensor,
    start: usize,
    dims: [usize; 4],
    strides: [usize; 4],
}

impl Broadcast {
    fn new(t: &FlexTensor, x: &Problem) -> Self {
        let tensor = t.to_contiguous();
        let s = tensor.layout().shape();
        let dims = [s[0], s[1], s[2], s[3]];
        let target = [x.batch, x.heads, x.l_q, x.l_k];
        debug_assert!(dims.iter().zip(target).all(|(&d, t)| d == t || d == 1));
        let mut strides = [0; 4];
        let mut next = 1;
        for axis in (0..4).rev() {
            strides[axis] = if dims[axis] > 1 { next } else { 0 };
            next *= dims[axis];
        }
        Self {
            start: tensor.layout().start_offset(),
            tensor,
            dims,
            strides,
        }
    }

    /// The `[l_q, l_k]` plane of batch `b`, head `h` of a mask.
    fn mask_plane(&self, b: usize, h: usize) -> Plane<'_, u8> {
        self.plane(self.tensor.storage::<u8>(), b, h)
    }

    /// The `[l_q, l_k]` plane of batch `b`, head `h` of a bias.
    fn bias_plane(&self, b: usize, h: usize) -> Plane<'_, f32> {
        self.plane(self.tensor.storage::<f32>(), b, h)
    }

    fn plane<'a, T>(&self, data: &'a [T], b: usize, h: usize) -> Plane<'a, T> {
        let start = self.start + b * self.strides[0] + h * self.strides[1];
        Plane {
            data: &data[start..],
            row: self.strides[2],
            col: self.strides[3],
        }
    }
}

/// One head's mask or bias: element `(i, j)` at `i·row + j·col`.
#[derive(Clone, Copy)]
struct Plane<'a, T> {
    data: &'a [T],
    row: usize,
    col: usize,
}

/// The tiles of one call: the block mask's (empty ones skipped, partial ones masked by their
/// flags), or without one all query rows at once against key tiles of [`TILE`] columns.
struct Tiles<'a> {
    /// Query rows per tile.
    rows: usize,
    /// Key columns per tile.
    width: usize,
    n_q: usize,
    n_kv: usize,
    blocks: Option<&'a BlockMask>,
}

/// A tile to compute: `None` when every pair in it is allowed, else the flags of its pairs
/// (`rows × width` of the block mask's tile, row-major, `true` = allowed).
type TileFlags<'a> = Option<&'a [bool]>;

impl<'a> Tiles<'a> {
    fn new(x: &Problem, blocks: Option<&'a BlockMask>) -> Self {
        let [rows, width] = blocks.map_or([x.l_q.max(1), TILE], BlockMask::block);
        Self {
            rows,
            width,
            n_q: x.l_q.div_ceil(rows),
            n_kv: x.l_k.div_ceil(width),
            blocks,
        }
    }

    /// Where key block `kv_block` meets query rows `q0..q0 + rows` in a call of `l_k` keys.
    #[inline(always)]
    fn at(&self, kv_block: usize, q0: usize, rows: usize, l_k: usize) -> TileAt<'_> {
        let start = kv_block * self.width;
        TileAt {
            q0,
            rows,
            start,
            width: self.width.min(l_k - start),
            kv_block,
            tiles: self,
        }
    }

    /// Tile `(q_block, kv_block)` of a head: `None` when it is empty (skipped).
    #[inline(always)]
    fn tile(&self, head: &Head, q_block: usize, kv_block: usize) -> Option<TileFlags<'a>> {
        let Some(blocks) = self.blocks else {
            return Some(None);
        };
        match blocks.kind(head.batch, head.index, q_block, kv_block) {
            BlockKind::Empty => None,
            BlockKind::Full => Some(None),
            BlockKind::Partial => Some(blocks.tile(head.batch, head.index, q_block, kv_block)),
        }
    }
}

/// One query head's inputs.
struct Head<'a> {
    batch: usize,
    index: usize,
    /// `[l_q, d_k]`
    q: &'a [f32],
    /// `[l_k, d_k]`
    k: &'a [f32],
    /// `[l_k, d_v]`
    v: &'a [f32],
    mask: Option<Plane<'a, u8>>,
    bias: Option<Plane<'a, f32>>,
    dropout: Option<HeadDropout>,
    score: Option<&'a dyn ScoreMod>,
}

/// One head's share of the dropout mask: its query row `i` is row `first_row + i`.
#[derive(Clone, Copy)]
struct HeadDropout {
    mask: DropoutMask,
    first_row: u64,
}

impl HeadDropout {
    /// Query row `i`'s weights against the keys from `start` times their dropout factors.
    #[inline(always)]
    fn apply(&self, row: &mut [f32], i: usize, start: usize) {
        let key = self.mask.row_key(self.first_row + i as u64);
        self.mask.apply(row, key, start as u32);
    }
}

/// Where a block of scores is: query rows `q0..q0 + rows` (one or more query blocks, none of
/// them empty against this key block) against keys `start..start + width` (key block
/// `kv_block`).
#[derive(Clone, Copy)]
struct TileAt<'a> {
    q0: usize,
    rows: usize,
    start: usize,
    width: usize,
    kv_block: usize,
    tiles: &'a Tiles<'a>,
}

impl Head<'_> {
    /// `scores` ← `cap(scale · Q · K_tileᵀ) + bias + score mod` for the tile, masked pairs
    /// `-inf`; with a soft-cap and `derivative`, also its derivative `1 − tanh²` there.
    #[inline(always)]
    fn tile_scores<const FMA: bool>(
        &self,
        x: &Problem,
        scores: &mut [f32],
        at: TileAt,
        derivative: Option<&mut [f32]>,
    ) {
        let q_rows = &self.q[at.q0 * x.d_k..(at.q0 + at.rows) * x.d_k];
        let k_tile = &self.k[at.start * x.d_k..(at.start + at.width) * x.d_k];
        matmul(
            scores,
            at.rows,
            at.width,
            false,
            q_rows,
            Op::N,
            k_tile,
            Op::T,
            x.d_k,
            x.scale,
        );
        if let Some(cap) = x.softcap {
            let inv = 1.0 / cap;
            match derivative {
                Some(derivative) => {
                    for (v, d) in scores.iter_mut().zip(derivative.iter_mut()) {
                        let t = tanh::<FMA>(*v * inv);
                        *v = cap * t;
                        *d = 1.0 - t * t;
                    }
                }
                None => scores
                    .iter_mut()
                    .for_each(|v| *v = cap * tanh::<FMA>(*v * inv)),
            }
        }
        self.finish_scores(scores, at);
    }

    /// Adds the bias and the score mod to a tile's scores in place and sets masked pairs to
    /// `-inf`. Rows are contiguous (or one broadcast value), so the loops vectorise.
    #[inline(always)]
    fn finish_scores(&self, scores: &mut [f32], at: TileAt) {
        let (start, width) = (at.start, at.width);
        let block_rows = at.tiles.rows;
        let mut flags: TileFlags = None;
        for (r, row) in scores.chunks_exact_mut(width).enumerate() {
            let i = at.q0 + r;
            if r == 0 || i.is_multiple_of(block_rows) {
                // A new query block: its tile's flags (every tile here is non-empty).
                flags = at
                    .tiles
                    .tile(self, i / block_rows, at.kv_block)
                    .expect("a non-empty tile");
            }
            if let Some(bias) = self.bias {
                let base = i * bias.row + start * bias.col;
                if bias.col == 1 {
                    for (v, &b) in row.iter_mut().zip(&bias.data[base..base + width]) {
                        *v += b;
                    }
                } else {
                    let b = bias.data[base];
                    row.iter_mut().for_each(|v| *v += b);
                }
            }
            if let Some(score) = self.score {
                score.add_to_row(row, self.batch, self.index, i, start);
            }
            if let Some(mask) = self.mask {
                let base = i * mask.row + start * mask.col;
                if mask.col == 1 {
                    for (v, &m) in row.iter_mut().zip(&mask.data[base..base + width]) {
                        *v = if m != 0 { f32::NEG_INFINITY } else { *v };
                    }
                } else if mask.data[base] != 0 {
                    row.fill(f32::NEG_INFINITY);
                }
            }
            if let Some(flags) = flags {
                let first = (i % block_rows) * at.tiles.width;
                let flags = &flags[first..first + width];
                for (v, &allowed) in row.iter_mut().zip(flags) {
                    *v = if allowed { *v } else { f32::NEG_INFINITY };
                }
            }
        }
    }
}

/// Lanes for the reductions below: independent partial results, so they vectorise (a single
/// running float is a dependency chain the compiler may not reorder).
const LANES: usize = 8;

#[inline(always)]
fn max_of(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for chunk in chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            *l = l.max(v);
        }
    }
    lanes.into_iter().fold(rest, f32::max)
}

#[inline(always)]
fn sum_of(row: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            *l += v;
        }
    }
    lanes.into_iter().sum::<f32>() + rest
}

/// `row ← exp(row − shift)`.
#[inline(always)]
fn exp_shifted<const FMA: bool>(row: &mut [f32], shift: f32) {
    for v in row.iter_mut() {
        *v = exp::<FMA>(*v - shift);
    }
}

/// Whether this CPU has AVX2 and FMA: the kernels' element-wise loops are compiled twice,
/// for the baseline x86-64 (SSE2, 4 lanes) and for these (8 lanes, fused multiply-add), and
/// the second runs where it can (`gemm` dispatches the same way).
pub(super) fn avx2_fma() -> bool {
    #[cfg(test)]
    if tests::BASELINE.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One query block of one head, and where its results go.
struct Block<'a> {
    index: usize,
    /// `[rows, d_v]`
    out: &'a mut [f32],
    /// `[rows]`
    lse: &'a mut [f32],
}

fn forward_block(
    x: &Problem,
    head: &Head,
    tiles: &Tiles,
    qb: usize,
    out: &mut [f32],
    lse: &mut [f32],
    scores: &mut [f32],
) {
    let block = Block {
        index: qb,
        out,
        lse,
    };
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { forward_block_avx2(x, head, tiles, block, scores) };
    }
    forward_block_body::<false>(x, head, tiles, block, scores)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn forward_block_avx2(x: &Problem, head: &Head, tiles: &Tiles, block: Block, scores: &mut [f32]) {
    forward_block_body::<true>(x, head, tiles, block, scores)
}

fn backward_group(
    x: &Problem,
    tiles: &Tiles,
    heads: &[Head],
    saved: &SavedHeads,
    bias: Option<BiasSlots>,
    scratch: &mut Scratch,
    out: GroupGrads,
) {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { backward_group_avx2(x, tiles, heads, saved, bias, scratch, out) };
    }
    backward_group_body::<false>(x, tiles, heads, saved, bias, scratch, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn backward_group_avx2(
    x: &Problem,
    tiles: &Tiles,
    heads: &[Head],
    saved: &SavedHeads,
    bias: Option<BiasSlots>,
    scratch: &mut Scratch,
    out: GroupGrads,
) {
    backward_group_body::<true>(x, tiles, heads, saved, bias, scratch, out)
}

/// Online-softmax attention of one query block of one head: its rows of the output and the
/// log-sum-exp, from the key tiles that are not empty.
#[inline(always)]
fn forward_block_body<const FMA: bool>(
    x: &Problem,
    head: &Head,
    tiles: &Tiles,
    block: Block,
    scores: &mut [f32],
) {
    let Block { index, out, lse } = block;
    let (q0, rows) = (index * tiles.rows, lse.len());
    // `lse` holds the running row max until the end; the row sums live in a local.
    let mut sums = vec![0f32; rows];
    lse.fill(f32::NEG_INFINITY);
    for kb in 0..tiles.n_kv {
        if tiles.tile(head, index, kb).is_none() {
            continue;
        }
        let at = tiles.at(kb, q0, rows, x.l_k);
        let (start, width) = (at.start, at.width);
        let scores = &mut scores[..rows * width];
        let v_tile = &head.v[start * x.d_v..(start + width) * x.d_v];
        head.tile_scores::<FMA>(x, scores, at, None);
        for (i, row) in scores.chunks_exact_mut(width).enumerate() {
            let old_max = lse[i];
            let new_max = old_max.max(max_of(row));
            if new_max == f32::NEG_INFINITY {
                // Every key so far masked: this tile adds nothing.
                row.fill(0.0);
                continue;
            }
            exp_shifted::<FMA>(row, new_max);
            let tile_sum = sum_of(row);
            if old_max != new_max {
                let correction = exp::<FMA>(old_max - new_max);
                for o in &mut out[i * x.d_v..(i + 1) * x.d_v] {
                    *o *= correction;
                }
                sums[i] *= correction;
            }
            sums[i] += tile_sum;
            lse[i] = new_max;
            // The row sum above is the softmax's; only O sees the dropped weights.
            if let Some(dropout) = &head.dropout {
                dropout.apply(row, q0 + i, start);
            }
        }
        // O += P · V_tile
        matmul(
            out,
            rows,
            x.d_v,
            true,
            scores,
            Op::N,
            v_tile,
            Op::N,
            width,
            1.0,
        );
    }
    for (i, (lse, &sum)) in lse.iter_mut().zip(&sums).enumerate() {
        if sum > 0.0 {
            let inv = 1.0 / sum;
            for o in &mut out[i * x.d_v..(i + 1) * x.d_v] {
                *o *= inv;
            }
            *lse += sum.ln();
        } else {
            // Fully masked: output stays 0, probabilities recompute as exp(-inf - LOWEST) = 0.
            *lse = LOWEST;
        }
    }
}

/// The next run `first..end` of consecutive query blocks from `from` on whose tiles against
/// key block `kv_block` are not empty.
#[inline(always)]
fn next_run(tiles: &Tiles, head: &Head, kv_block: usize, from: usize) -> Option<(usize, usize)> {
    let visible = |qb: usize| tiles.tile(head, qb, kv_block).is_some();
    let first = (from..tiles.n_q).find(|&qb| visible(qb))?;
    let end = (first + 1..tiles.n_q)
        .find(|&qb| !visible(qb))
        .unwrap_or(tiles.n_q);
    Some((first, end))
}

/// The saved forward of one group's query heads.
struct SavedHeads<'a> {
    o: Vec<&'a [f32]>,
    d_o: Vec<&'a [f32]>,
    lse: Vec<&'a [f32]>,
}

/// One job's share of the bias gradient: the slots of its heads (or the one shared slot).
struct BiasSlots<'a> {
    data: &'a mut [f32],
    per_head: bool,
    len: usize,
    row: usize,
    col: usize,
}

struct Scratch {
    p: Vec<f32>,
    ds: Vec<f32>,
    /// The soft-cap's derivative per pair of a tile.
    derivative: Vec<f32>,
    delta: Vec<f32>,
}

impl Scratch {
    fn new(x: &Problem, tiles: &Tiles) -> Self {
        // A run of query blocks can hold every query row.
        let tile = x.l_q.max(1) * tiles.width;
        Self {
            p: vec![0.0; tile],
            ds: vec![0.0; tile],
            derivative: vec![0.0; if x.softcap.is_some() { tile } else { 0 }],
            delta: vec![0.0; x.l_q],
        }
    }
}

/// Where one task's gradients go, zeroed.
struct GroupGrads<'a> {
    /// `[group, l_q, d_k]`
    dq: &'a mut [f32],
    /// `[l_k, d_k]`
    dk: &'a mut [f32],
    /// `[l_k, d_v]`
    dv: &'a mut [f32],
}

/// A job's tasks with their own dQ, dK, dV, and its share of the bias gradient.
#[allow(clippy::type_complexity)]
struct JobResult {
    tasks: Vec<(usize, usize, (Vec<f32>, Vec<f32>, Vec<f32>))>,
    d_bias: Vec<f32>,
}

/// The gradients of one key/value head and its group of query heads, tile by tile over the
/// tiles that are not empty.
#[inline(always)]
fn backward_group_body<const FMA: bool>(
    x: &Problem,
    tiles: &Tiles,
    heads: &[Head],
    saved: &SavedHeads,
    mut bias: Option<BiasSlots>,
    scratch: &mut Scratch,
    out: GroupGrads,
) {
    let GroupGrads { dq, dk, dv } = out;
    for (i, head) in heads.iter().enumerate() {
        let (o, d_o, lse) = (saved.o[i], saved.d_o[i], saved.lse[i]);
        // D_r = Σ_d dO_rd · O_rd
        for (r, delta) in scratch.delta.iter_mut().enumerate() {
            let row = r * x.d_v..(r + 1) * x.d_v;
            *delta = o[row.clone()]
                .iter()
                .zip(&d_o[row])
                .map(|(a, b)| a * b)
                .sum();
        }
        let dq = &mut dq[i * x.l_q * x.d_k..(i + 1) * x.l_q * x.d_k];
        for kb in 0..tiles.n_kv {
            // Consecutive query blocks that see this key block go through one set of products
            // (a sliding window's are a run of a few; without a block mask, all rows at once).
            let mut next = 0;
            while let Some((first, end)) = next_run(tiles, head, kb, next) {
                next = end;
                let q0 = first * tiles.rows;
                let rows = (end * tiles.rows).min(x.l_q) - q0;
                let d_o = &d_o[q0 * x.d_v..(q0 + rows) * x.d_v];
                let q_rows = &head.q[q0 * x.d_k..(q0 + rows) * x.d_k];
                let lse = &lse[q0..q0 + rows];
                let delta = &scratch.delta[q0..q0 + rows];
                let dq = &mut dq[q0 * x.d_k..(q0 + rows) * x.d_k];
                let at = tiles.at(kb, q0, rows, x.l_k);
                let (start, width) = (at.start, at.width);
                let k_tile = &head.k[start * x.d_k..(start + width) * x.d_k];
                let v_tile = &head.v[start * x.d_v..(start + width) * x.d_v];
                let p = &mut scratch.p[..rows * width];
                let ds = &mut scratch.ds[..rows * width];
                let derivative =
                    (x.softcap.is_some()).then(|| &mut scratch.derivative[..rows * width]);
                // P = exp(scores − lse), masked pairs 0.
                let has_derivative = derivative.is_some();
                head.tile_scores::<FMA>(x, p, at, derivative);
                for (row, &lse) in p.chunks_exact_mut(width).zip(lse) {
                    exp_shifted::<FMA>(row, lse);
                }
                // dP = dO · V_tileᵀ, then dS = P ∘ (dP − D) in its place; with dropout Z (0 or
                // 1/(1−p)), O = (P∘Z)·V, so dS = P ∘ (dP∘Z − D) and dV takes P∘Z.
                matmul(
                    ds,
                    rows,
                    width,
                    false,
                    d_o,
                    Op::N,
                    v_tile,
                    Op::T,
                    x.d_v,
                    1.0,
                );
                if let Some(dropout) = &head.dropout {
                    for (r, ds_row) in ds.chunks_exact_mut(width).enumerate() {
                        dropout.apply(ds_row, q0 + r, start);
                    }
                }
                for ((ds_row, p_row), &delta) in ds
                    .chunks_exact_mut(width)
                    .zip(p.chunks_exact(width))
                    .zip(delta)
                {
                    for (d, &p) in ds_row.iter_mut().zip(p_row) {
                        *d = p * (*d - delta);
                    }
                }
                if let Some(dropout) = &head.dropout {
                    for (r, p_row) in p.chunks_exact_mut(width).enumerate() {
                        dropout.apply(p_row, q0 + r, start);
                    }
                }
                // dV_tile += (P∘Z)ᵀ · dO
                let dv_tile = &mut dv[start * x.d_v..(start + width) * x.d_v];
                matmul(dv_tile, width, x.d_v, true, p, Op::T, d_o, Op::N, rows, 1.0);
                // The bias is added after the soft-cap: its gradient is dS itself.
                if let Some(slots) = bias.as_mut() {
                    let offset = if slots.per_head { i * slots.len } else { 0 };
                    for (r, ds_row) in ds.chunks_exact(width).enumerate() {
                        let base = offset + (q0 + r) * slots.row + start * slots.col;
                        for (j, &d) in ds_row.iter().enumerate() {
                            slots.data[base + j * slots.col] += d;
                        }
                    }
                }
                if has_derivative {
                    for (d, &c) in ds.iter_mut().zip(&scratch.derivative[..rows * width]) {
                        *d *= c;
                    }
                }
                // dQ += scale · dS · K_tile;  dK_tile += scale · dSᵀ · Q
                matmul(
                    dq,
                    rows,
                    x.d_k,
                    true,
                    ds,
                    Op::N,
                    k_tile,
                    Op::N,
                    width,
                    x.scale,
                );
                let dk_tile = &mut dk[start * x.d_k..(start + width) * x.d_k];
                matmul(
                    dk_tile,
                    width,
                    x.d_k,
                    true,
                    ds,
                    Op::T,
                    q_rows,
                    Op::N,
                    rows,
                    x.scale,
                );
            }
        }
    }
}

/// How a contiguous row-major operand enters a product.
#[derive(Clone, Copy)]
enum Op {
    /// As stored.
    N,
    /// Transposed.
    T,
}

/// `dst[m × n] = (accumulate ? dst : 0) + alpha · op(lhs)[m × k] · op(rhs)[k × n]`, every
/// operand a contiguous row-major block (`lhs` stored `[m, k]`, or `[k, m]` when transposed).
#[allow(clippy::too_many_arguments)]
fn matmul(
    dst: &mut [f32],
    m: usize,
    n: usize,
    accumulate: bool,
    lhs: &[f32],
    lhs_op: Op,
    rhs: &[f32],
    rhs_op: Op,
    k: usize,
    alpha: f32,
) {
    assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n);
    let (lhs_rs, lhs_cs) = match lhs_op {
        Op::N => (k as isize, 1),
        Op::T => (1, m as isize),
    };
    let (rhs_rs, rhs_cs) = match rhs_op {
        Op::N => (n as isize, 1),
        Op::T => (1, k as isize),
    };
    // SAFETY: the assert bounds every index gemm reads or writes: row-major blocks of the
    // sizes checked, strides from those sizes.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs,
            lhs_rs,
            rhs.as_ptr(),
            rhs_cs,
            rhs_rs,
            1.0,
            alpha,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `e^x` for `x ≤ 88`, 0 for `x ≤ -88` (and `-inf`), relative error ~1e-7: branch-free so
/// the loops around it vectorise, where libm's `expf` is a call per element.
#[inline(always)]
pub(super) fn exp<const FMA: bool>(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // a·b + c, fused where the CPU has it (without, `mul_add` would be a libm call).
    let madd = |a: f32, b: f32, c: f32| if FMA { a.mul_add(b, c) } else { a * b + c };
    let x = x.clamp(-88.0, 88.0);
    let t = madd(x, std::f32::consts::LOG2_E, MAGIC);
    let n = t - MAGIC;
    let r = madd(-n, LN2_LO, madd(-n, LN2_HI, x));
    let mut p = 1.0 / 720.0;
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = madd(p, r, c);
    }
    // 2^n from its exponent bits; n = -127 (x ≤ -88) gives the bits of 0.0.
    let bits = ((t.to_bits() as i32 - 0x4B40_0000 + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

/// `tanh(x) = 1 − 2 / (e^{2x} + 1)` with the [`exp`] above (absolute error ~1e-7; ±1 beyond
/// ±44 where `exp` saturates), so the soft-cap loops vectorise.
#[inline(always)]
fn tanh<const FMA: bool>(x: f32) -> f32 {
    1.0 - 2.0 / (exp::<FMA>(2.0 * x) + 1.0)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::fused::{fused_attention, reference_attention};
    use burn::{
        prelude::*,
        tensor::{Distribution, Tolerance},
    };

    /// Runs the kernels' baseline (SSE2) loops even on a CPU with AVX2 and FMA.
    pub(in crate::fused) static BASELINE: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);

    /// Several key tiles (the last one partial), grouped-query heads, a causal-and-padding
    /// mask with fully masked rows, and a bias broadcast each way: output and every gradient
    /// equal the decomposition's under autodiff, with the AVX2/FMA loops where the CPU has
    /// them and with the baseline ones.
    #[test]
    fn kernels_equal_the_decomposition_across_tiles() {
        check_across_tiles();
        BASELINE.store(true, std::sync::atomic::Ordering::Relaxed);
        check_across_tiles();
        BASELINE.store(false, std::sync::atomic::Ordering::Relaxed);
    }

    fn check_across_tiles() {
        let device = Device::flex().autodiff();
        let (batch, heads, kv_heads, l_q, l_k) = (2, 4, 2, 70, 2 * TILE + 3);
        let random = |shape: [usize; 4]| {
            Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device).require_grad()
        };
        let padding = crate::mask::padding_mask_from_lengths(&[l_k, 50], l_k, &device)
            .reshape([batch, 1, 1, l_k]);
        // Query i sees keys ≤ i + 60 (rows end in different tiles), batch 1 its first 50,
        // and query 3 of batch 0 none.
        let causal =
            Tensor::<2, Bool>::tril_mask([l_q, l_k], 60, &device).reshape([1, 1, l_q, l_k]);
        let row: Vec<bool> = (0..batch * l_q * l_k).map(|i| i / l_k == 3).collect();
        let row = Tensor::<4, Bool>::from_data(TensorData::new(row, [batch, 1, l_q, l_k]), &device);
        let mask = padding.bool_or(causal).bool_or(row);
        for bias_shape in [
            None,
            Some([1, heads, l_q, l_k]),
            Some([batch, 1, 1, l_k]),
            Some([1, 1, l_q, l_k]),
        ] {
            let (q, k, v) = (
                random([batch, heads, l_q, 8]),
                random([batch, kv_heads, l_k, 8]),
                random([batch, kv_heads, l_k, 5]),
            );
            let bias = bias_shape.map(random);
            let weight =
                Tensor::<4>::random([batch, heads, l_q, 5], Distribution::Default, &device);
            let grads_of = |out: Tensor<4>| {
                let grads = (out.clone() * weight.clone()).sum().backward();
                let mut all = vec![out.inner()];
                for t in [Some(&q), Some(&k), Some(&v), bias.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    all.push(t.grad(&grads).unwrap());
                }
                all
            };
            let (q2, k2, v2) = (q.clone(), k.clone(), v.clone());
            let got = grads_of(fused_attention(
                q2,
                k2,
                v2,
                Some(mask.clone()),
                bias.clone(),
                0.3,
            ));
            let want = grads_of(reference_attention(
                q.clone(),
                k.clone(),
                v.clone(),
                Some(mask.clone()),
                bias.clone(),
                0.3,
            ));
            for (i, (g, w)) in got.into_iter().zip(want).enumerate() {
                let context = format!("bias {bias_shape:?}, tensor {i}");
                let g = g.into_data();
                assert!(g.iter::<f32>().all(f32::is_finite), "{context}");
                // Relative too: a broadcast bias gradient sums many rows (values near 100), in
                // an order that depends on how rayon ran the tasks.
                g.assert_approx_eq::<f32>(&w.into_data(), Tolerance::rel_abs(1e-5, 2e-5));
            }
        }
    }

    #[test]
    fn exp_is_close_to_libm_and_zero_far_below() {
        let mut worst = 0f32;
        for i in -8700..=8800 {
            let x = i as f32 / 100.0;
            let want = x.exp();
            for got in [exp::<false>(x), exp::<true>(x)] {
                if want > 1e-30 {
                    worst = worst.max(((got - want) / want).abs());
                }
            }
        }
        assert!(worst < 5e-7, "relative error {worst}");
        for f in [exp::<false>, exp::<true>] {
            assert_eq!(f(f32::NEG_INFINITY), 0.0);
            assert_eq!(f(-200.0), 0.0);
            assert_eq!(f(0.0), 1.0);
        }
    }
}
