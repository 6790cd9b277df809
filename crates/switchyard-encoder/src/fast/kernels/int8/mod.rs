//! The int8 matrix multiply: weights and activations quantised symmetrically to 8 bits in blocks of 32
//! inputs (weights once at load, one scale per output column and block; activations as they are packed, one
//! scale per row and block); each block's products summed exactly in integers ([`simd`]), then scaled and
//! added in f32.
//!
//! - A weight is stored as the unsigned byte `q + 128` (1 to 255), the operand `vpdpbusd` takes unsigned;
//!   the `128 · Σ a` this adds to a block's sum is taken off with the row's quantised sum over the block,
//!   known when it is packed.
//! - Blocks of 32 keep one large value from coarsening a whole row or column: measured on 333 benchmark
//!   prompts, 1 − cosine to f32 falls from 0.0020 with per-row and per-column scales to 0.0003. They also
//!   make the quantisation of a slice of inputs that of the whole row, so a pass split by heads across
//!   threads (each thread packs its slice) quantises as one thread does.
//! - The layout follows the f32 kernel's: panels of 16 output columns, whose [`QLine`]s each hold 4 inputs
//!   of the 16 columns (64 bytes, one cache line); rows in blocks of [`ROWS`] (then [`TAIL_ROWS`]), each
//!   row block's 4-input groups interleaved by row, and its scales likewise.

mod simd;

pub use simd::{detect, Isa};

use simd::{RowBlocks, GROUPS_PER_BLOCK};

use super::{row_blocks, ROWS, TAIL_ROWS};
use crate::fast::kernels::PANEL;

/// Inputs per activation scale.
pub const BLOCK: usize = 4 * GROUPS_PER_BLOCK;
/// Largest weight magnitude after quantisation.
const W_MAX: f32 = 127.0;
/// Added to a quantised weight to store it as an unsigned byte.
const W_OFFSET: i32 = 128;
/// Largest activation magnitude after quantisation.
const A_MAX: f32 = 127.0;
/// Adding this to an f32 of magnitude below 2^22 rounds it to an integer (ties to even), held in the low
/// mantissa bits.
const ROUND: f32 = 12_582_912.0;

/// 4 inputs of one panel's 16 columns: byte `4j + i` is input `i` of column `j`, plus 128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct QLine(pub [u8; 64]);

/// A `Linear` weight quantised and packed for [`matmul`].
#[derive(Debug, Clone)]
pub struct QWeights {
    lines: Vec<QLine>,
    /// Per panel, per block of 32 inputs, the 16 columns' scales.
    scales: Vec<[f32; PANEL]>,
    inputs: usize,
}

impl QWeights {
    /// Quantises a `[out][in]` weight (PyTorch's layout): each output column's block of 32 inputs is scaled
    /// so its largest magnitude becomes 127, and rounded. `outputs` must be a multiple of 16 and `inputs` of
    /// 32.
    pub fn quantize(weight: &[f32], outputs: usize, inputs: usize) -> Result<Self, String> {
        if !outputs.is_multiple_of(PANEL) || !inputs.is_multiple_of(BLOCK) || weight.len() != outputs * inputs {
            return Err(format!(
                "int8 needs outputs in multiples of {PANEL} and inputs in multiples of {BLOCK}: this layer is \
                 {outputs} x {inputs}; use precision f32"
            ));
        }
        let (groups, blocks) = (inputs / 4, inputs / BLOCK);
        let mut lines = vec![QLine([0; 64]); outputs / PANEL * groups];
        let mut scales = vec![[0f32; PANEL]; outputs / PANEL * blocks];
        for (o, column) in weight.chunks_exact(inputs).enumerate() {
            let (p, j) = (o / PANEL, o % PANEL);
            for (b, values) in column.chunks_exact(BLOCK).enumerate() {
                let amax = values.iter().fold(0f32, |m, w| m.max(w.abs()));
                let inv = if amax > 0.0 { W_MAX / amax } else { 0.0 };
                scales[p * blocks + b][j] = amax / W_MAX;
                for (i, w) in values.iter().enumerate() {
                    let q = round((w * inv).clamp(-W_MAX, W_MAX)) + W_OFFSET;
                    let input = b * BLOCK + i;
                    lines[p * groups + input / 4].0[4 * j + input % 4] = q as u8;
                }
            }
        }
        Ok(Self { lines, scales, inputs })
    }
}

/// `x` rounded to the nearest integer, ties to even (|x| < 2^22), the same on every CPU.
#[inline(always)]
fn round(x: f32) -> i32 {
    ((x + ROUND).to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32)
}

/// Rows of activations quantised and packed by [`QRows::pack`].
#[derive(Debug, Default)]
pub struct QRows {
    /// Row blocks, each block's 4-input groups interleaved by row: 4 signed bytes, little-endian, per i32.
    data: Vec<i32>,
    /// Row blocks, each block's scales (one per 32 inputs) interleaved by row; zero for padding rows.
    scales: Vec<f32>,
    /// Likewise, `128 · Σ q` over each block of 32 inputs: what the weights' offset adds to its sums.
    offsets: Vec<i32>,
    /// Inputs per row.
    k: usize,
    /// Rows packed.
    rows: usize,
    /// One row's quantised values, scales and offsets while it is packed (kept to reuse the memory).
    scratch: (Vec<i8>, Vec<f32>, Vec<i32>),
}

thread_local! {
    static SPARE: std::cell::RefCell<Vec<QRows>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl QRows {
    /// Empty rows, reusing this thread's spare buffers if it has any (see [`QRows::recycle`]).
    pub fn take() -> Self {
        SPARE.with(|s| s.borrow_mut().pop()).unwrap_or_default()
    }

    /// Keeps the buffers for this thread's next [`QRows::take`].
    pub fn recycle(self) {
        SPARE.with(|s| {
            let mut spare = s.borrow_mut();
            if spare.len() < 8 {
                spare.push(self);
            }
        });
    }

    /// Quantises and packs `rows` rows of `k` values (row-major, `stride` apart; `k` a multiple of 32). Rows
    /// past `rows` in the last block are zero, and so is a block holding a value that is not finite (where f32
    /// arithmetic would carry a NaN on).
    pub fn pack(&mut self, a: &[f32], rows: usize, k: usize, stride: usize) {
        let (groups, blocks) = (k / 4, k / BLOCK);
        let padded: usize = row_blocks(rows).last().map_or(0, |(first, size)| first + size);
        self.data.clear();
        self.data.resize(padded * groups, 0);
        self.scales.clear();
        self.scales.resize(padded * blocks, 0.0);
        self.offsets.clear();
        self.offsets.resize(padded * blocks, 0);
        (self.k, self.rows) = (k, rows);
        let (q, row_scales, row_offsets) = &mut self.scratch;
        q.resize(k, 0);
        row_scales.resize(blocks, 0.0);
        row_offsets.resize(blocks, 0);
        for (first, size) in row_blocks(rows) {
            let data = &mut self.data[first * groups..(first + size) * groups];
            let scales = &mut self.scales[first * blocks..(first + size) * blocks];
            let offsets = &mut self.offsets[first * blocks..(first + size) * blocks];
            for r in 0..size.min(rows - first) {
                // A row out of `a`'s bounds (a caller's mistake) stays zero, as padding does.
                let Some(row) = a.get((first + r) * stride..(first + r) * stride + k) else { continue };
                quantize_row(row, q, row_scales, row_offsets);
                for ((s, o), (scale, offset)) in scales
                    .chunks_exact_mut(size)
                    .zip(offsets.chunks_exact_mut(size))
                    .zip(row_scales.iter().zip(row_offsets.iter()))
                {
                    (s[r], o[r]) = (*scale, *offset);
                }
                for (slot, four) in data.chunks_exact_mut(size).zip(q.as_chunks::<4>().0) {
                    slot[r] = i32::from_le_bytes(four.map(|b| b as u8));
                }
            }
        }
    }
}

multiversion! {
    /// Quantises one row to `q`, each block of 32 values symmetric (its largest magnitude becomes 127),
    /// writing each block's scale and weight-offset term (see [`QRows`]).
    pub fn quantize_row(row: &[f32], q: &mut [i8], scales: &mut [f32], offsets: &mut [i32]) => quantize_row_impl
}

#[inline(always)]
fn quantize_row_impl<const FMA: bool>(row: &[f32], q: &mut [i8], scales: &mut [f32], offsets: &mut [i32]) {
    let blocks = row.chunks_exact(BLOCK).zip(q.chunks_exact_mut(BLOCK)).zip(scales.iter_mut().zip(offsets));
    for ((values, q), (scale, offset)) in blocks {
        // Plain loops the vectoriser takes whole: the largest magnitude as an integer maximum (the bits of
        // non-negative floats order as the floats do), the sum as an integer sum.
        let amax = f32::from_bits(values.iter().fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff)));
        let inv = if amax > 0.0 && amax.is_finite() { A_MAX / amax } else { 0.0 };
        let mut sum = 0i32;
        for (q, v) in q.iter_mut().zip(values) {
            let r = round(v * inv).clamp(-(A_MAX as i32), A_MAX as i32);
            *q = r as i8;
            sum += r;
        }
        let scale_value = if inv > 0.0 { amax / A_MAX } else { 0.0 };
        (*scale, *offset) = (scale_value, W_OFFSET * sum);
    }
}

/// Part of a [`QWeights`] for [`matmul`]: the panels `first .. first + count`, restricted to the inputs
/// `from..to` (multiples of 32), with their columns' bias (empty: none).
#[derive(Debug, Clone, Copy)]
pub struct QWindow<'a> {
    /// The weight.
    pub weights: &'a QWeights,
    /// First panel.
    pub first: usize,
    /// Panels.
    pub count: usize,
    /// First input used.
    pub from: usize,
    /// One past the last input used.
    pub to: usize,
    /// The panels' bias, 16 values per panel, or empty.
    pub bias: &'a [f32],
}

/// `out[r][p*16 + j] = bias + Σ_k a[r][k] · w[from + k][p*16 + j]` for the window's panels `p` (numbered from
/// 0), as [`super::matmul_panels`] does in f32, with `a` packed by [`QRows::pack`] over the window's inputs,
/// on the kernel build `isa`. Does nothing if the shapes disagree.
pub fn matmul(a: &QRows, isa: Isa, w: QWindow<'_>, out: &mut [f32], out_stride: usize) {
    let inputs = w.weights.inputs;
    let shapes_agree = w.from <= w.to && w.to - w.from == a.k && a.k.is_multiple_of(BLOCK);
    if !shapes_agree || w.to > inputs || !w.from.is_multiple_of(BLOCK) {
        debug_assert!(false, "int8 matmul on mismatched shapes: {} inputs packed, window {}..{}", a.k, w.from, w.to);
        return;
    }
    let (groups, blocks) = (a.k / 4, a.k / BLOCK);
    let all_blocks = inputs / BLOCK;
    // Panel `p` of the window: its lines and column scales over the window's inputs, and its bias.
    let panel = |p: usize| -> Option<PanelRef<'_>> {
        let global = w.first + p;
        let (start, first_block) = (global * inputs / 4 + w.from / 4, global * all_blocks + w.from / BLOCK);
        let lines = w.weights.lines.get(start..start + groups)?;
        let cols = w.weights.scales.get(first_block..first_block + blocks)?;
        let bias = w.bias.get(p * PANEL..(p + 1) * PANEL).and_then(|b| <&[f32; PANEL]>::try_from(b).ok());
        Some((lines, cols, bias.unwrap_or(&[0.0; PANEL])))
    };
    // Panels in pairs (the VNNI build keeps both panels' sums in flight), an odd last one alone.
    let mut p = 0;
    while p < w.count {
        let pair = p + 1 < w.count;
        let (Some(first), second) = (panel(p), if pair { panel(p + 1) } else { None }) else { return };
        for (start, size) in row_blocks(a.rows) {
            let block = RowBlock { start, size, valid: (a.rows - start).min(size) };
            let out = out.get_mut(start * out_stride + p * PANEL..).unwrap_or_default();
            if size == ROWS {
                row_block::<ROWS>(a, isa, block, first, second, out, out_stride);
            } else if size == TAIL_ROWS {
                row_block::<TAIL_ROWS>(a, isa, block, first, second, out, out_stride);
            }
        }
        if pair && second.is_none() {
            return;
        }
        p += if pair { 2 } else { 1 };
    }
}

/// One panel of a window: its weight lines and column scales over the window's inputs, and its bias.
type PanelRef<'a> = (&'a [QLine], &'a [[f32; PANEL]], &'a [f32; PANEL]);

/// Rows `start .. start + size` of a [`QRows`], of which the first `valid` are real.
#[derive(Clone, Copy)]
struct RowBlock {
    start: usize,
    size: usize,
    valid: usize,
}

/// One block of `R` rows against one panel, or two side by side (`second`, 16 columns on), written with the
/// panels' bias into `out` (the block's first row, first column), rows `out_stride` apart.
#[inline(always)]
fn row_block<const R: usize>(
    a: &QRows,
    isa: Isa,
    block: RowBlock,
    first: PanelRef<'_>,
    second: Option<PanelRef<'_>>,
    out: &mut [f32],
    out_stride: usize,
) {
    let (groups, blocks) = (a.k / 4, a.k / BLOCK);
    let RowBlock { start, size, valid } = block;
    let acts = a.data.get(start * groups..(start + size) * groups).unwrap_or_default().as_chunks::<R>().0;
    let scales = a.scales.get(start * blocks..(start + size) * blocks).unwrap_or_default();
    let offsets = a.offsets.get(start * blocks..(start + size) * blocks).unwrap_or_default();
    let rows = RowBlocks::<R> { scales: scales.as_chunks().0, offsets: offsets.as_chunks().0 };
    match second {
        Some(second) => {
            let [x, y] = simd::dot_block(isa, acts, rows, [first.0, second.0], [first.1, second.1]);
            store(&x, valid, first.2, out, out_stride);
            store(&y, valid, second.2, out.get_mut(PANEL..).unwrap_or_default(), out_stride);
        }
        None => {
            let [x] = simd::dot_block(isa, acts, rows, [first.0], [first.1]);
            store(&x, valid, first.2, out, out_stride);
        }
    }
}

/// Writes the first `valid` rows of a block's results, plus the bias, `out_stride` apart.
#[inline(always)]
fn store<const R: usize>(
    sums: &[[f32; PANEL]; R],
    valid: usize,
    bias: &[f32; PANEL],
    out: &mut [f32],
    out_stride: usize,
) {
    for (r, sums) in sums.iter().enumerate().take(valid) {
        let Some(dst) = out.get_mut(r * out_stride..r * out_stride + PANEL) else { return };
        let Ok(dst) = <&mut [f32; PANEL]>::try_from(dst) else { return };
        // Whole arrays, so the compiler adds them in vector registers.
        *dst = std::array::from_fn(|j| bias[j] + sums[j]);
    }
}

#[cfg(test)]
mod tests;
