//! A `Linear` layer in either precision ([`Precision`]), and its input packed to match: the one place the
//! forward pass ([`super::pass`]) meets the choice between the f32 and int8 kernels.

use super::kernels::int8::{self, Isa, QRows, QWeights, QWindow};
use super::kernels::{matmul_panels, pack_panels, pack_rows, packed_len, Line, Window, PANEL};
use super::pool;
use crate::Precision;

/// A weight packed for one of the kernels.
enum Packing {
    F32(Vec<Line>),
    Int8 { weights: QWeights, isa: Isa },
}

/// A `Linear` layer (several fused, outputs side by side) packed for its precision's kernel.
pub(super) struct Linear {
    packing: Packing,
    bias: Vec<f32>,
    /// Inputs.
    pub inputs: usize,
    /// Outputs (a multiple of 16).
    pub outputs: usize,
}

/// Rows of input packed by [`Linear::pack`] for the same layer's [`Linear::multiply`].
pub(super) enum Packed {
    F32(Vec<f32>),
    Int8(QRows),
}

impl Packed {
    /// Gives the buffers back to this thread's pools.
    pub fn recycle(self) {
        match self {
            Packed::F32(buffer) => pool::give(buffer),
            Packed::Int8(rows) => rows.recycle(),
        }
    }
}

/// Which part of a layer a [`Linear::multiply`] computes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Part {
    /// First panel of 16 output columns.
    pub first: usize,
    /// Panels.
    pub count: usize,
    /// First input used.
    pub from: usize,
    /// One past the last input used.
    pub to: usize,
    /// Whether the panels' bias is added.
    pub bias: bool,
}

impl Part {
    /// The panels `first .. first + count` over every input, with their bias.
    pub fn columns(first: usize, count: usize, inputs: usize) -> Self {
        Self { first, count, from: 0, to: inputs, bias: true }
    }
}

impl Linear {
    /// Packs a `[out][in]` weight (PyTorch's layout) and its bias for `precision`'s kernel. `outputs` must be
    /// a multiple of 16 (and `inputs` of 32 for int8).
    pub fn new(
        weight: &[f32],
        bias: Vec<f32>,
        outputs: usize,
        inputs: usize,
        precision: Precision,
    ) -> Result<Self, String> {
        if !outputs.is_multiple_of(PANEL) || bias.len() != outputs || weight.len() != outputs * inputs {
            return Err(format!("a {outputs} x {inputs} layer cannot be packed in panels of {PANEL} columns"));
        }
        let packing = match precision {
            Precision::F32 => Packing::F32(pack_panels(weight, outputs, inputs)),
            Precision::Int8 => {
                Packing::Int8 { weights: QWeights::quantize(weight, outputs, inputs)?, isa: int8::detect() }
            }
        };
        Ok(Self { packing, bias, inputs, outputs })
    }

    /// Packs `rows` rows of `k` inputs (row-major, `stride` apart) for [`Linear::multiply`].
    pub fn pack(&self, a: &[f32], rows: usize, k: usize, stride: usize) -> Packed {
        match self.packing {
            Packing::F32(_) => {
                let mut packed = pool::take(packed_len(rows, k));
                pack_rows(a, rows, k, stride, &mut packed);
                Packed::F32(packed)
            }
            Packing::Int8 { .. } => {
                let mut packed = QRows::take();
                packed.pack(a, rows, k, stride);
                Packed::Int8(packed)
            }
        }
    }

    /// `out[r][c] = Σ_{k in from..to} a[r][k] · W[k][first·16 + c]` (plus the bias if `part.bias`) for the
    /// part's columns `c`, written from column 0 in rows `out_stride` apart. `a` holds the inputs
    /// `part.from..part.to` of `rows` rows, packed by this layer's [`Linear::pack`].
    pub fn multiply(&self, a: &Packed, rows: usize, part: Part, out: &mut [f32], out_stride: usize) {
        let Part { first, count, from, to, bias } = part;
        let bias = if bias { self.bias.get(first * PANEL..(first + count) * PANEL).unwrap_or_default() } else { &[] };
        match (&self.packing, a) {
            (Packing::F32(panels), Packed::F32(a)) => {
                let panels = panels.get(first * self.inputs..(first + count) * self.inputs).unwrap_or_default();
                let window = Window { panels, inputs: self.inputs, from, to, bias };
                matmul_panels(a, rows, window, out, out_stride);
            }
            (Packing::Int8 { weights, isa }, Packed::Int8(a)) => {
                let window = QWindow { weights, first, count, from, to, bias };
                int8::matmul(a, *isa, window, out, out_stride);
            }
            // Packed by another layer's precision: not reachable from the pass, which packs with the layer.
            _ => {}
        }
    }
}
