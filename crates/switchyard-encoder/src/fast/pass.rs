//! The forward pass, in the two ways a pass shares out its work across the team:
//!
//! - [`Pass::forward`] splits each step: matmuls by output panels (each thread streams its share of the
//!   weights once: best for a few rows, where streaming weights from memory is the cost), attention by
//!   query rows. About thirty hand-offs per pass, with the joins done on the calling thread.
//! - [`forward_by_rows`] gives each thread a range of rows for a whole layer: one hand-off per layer (the
//!   attention needs every row's keys and values), and no serial work between steps. Each thread streams
//!   all the weights, which pays once there are enough rows to use each weight many times.

use std::sync::Arc;

use super::kernels::{add_layer_norm, attention, gelu, layer_norm, matmul_panels, pack_rows, Head, PANEL};
use super::team::{Task, Team};
use super::{pool, Linear, Model, Shape, Which};

/// Below this many multiply-adds a matmul runs on one thread (splitting costs more than it saves).
const PARALLEL_MIN_MACS: usize = 400_000;

/// One forward pass split step by step: the model and the threads it may use.
pub(super) struct Pass<'a> {
    pub model: &'a Arc<Model>,
    pub team: &'a Team,
}

impl Pass<'_> {
    /// Embeddings of the sequences, with matmuls and attention split across the pass's team.
    pub fn forward(&self, sequences: &[&[u32]]) -> Result<Vec<Vec<f32>>, String> {
        let m = &**self.model;
        let (x, spans) = embed_input(m, sequences)?;
        let rows = x.len() / m.shape.hidden;
        let mut x = Arc::new(x);
        for (l, layer) in m.layers.iter().enumerate() {
            let qkv = Arc::new(self.matmul(&x, rows, l, Which::Qkv)?);
            let ctx = Arc::new(self.attention(&qkv, &spans, rows)?);
            recycle(qkv);
            let mut attended = self.matmul(&ctx, rows, l, Which::AttnOut)?;
            recycle(ctx);
            add_layer_norm(&mut attended, &x, &layer.attn_norm.gamma, &layer.attn_norm.beta, m.shape.eps);
            recycle(x);
            let attended = Arc::new(attended);
            let up = Arc::new(self.matmul(&attended, rows, l, Which::Up)?);
            let mut out = self.matmul(&up, rows, l, Which::Down)?;
            recycle(up);
            add_layer_norm(&mut out, &attended, &layer.out_norm.gamma, &layer.out_norm.beta, m.shape.eps);
            recycle(attended);
            x = Arc::new(out);
        }
        Ok(pool_all(x, &spans, m.shape.hidden))
    }

    /// One matmul of layer `l` (`x · Wᵀ + b`, then GELU for the feed-forward's first half), split across the
    /// team by output panels: each thread streams its share of the weights once.
    fn matmul(&self, x: &Arc<Vec<f32>>, rows: usize, l: usize, which: Which) -> Result<Vec<f32>, String> {
        let linear = which.of(&self.model.layers[l]);
        let (k, n) = (linear.inputs, linear.outputs);
        let threads = self.team.threads();
        let activate = matches!(which, Which::Up);
        if threads == 1 || rows * k * n < PARALLEL_MIN_MACS {
            return Ok(matmul_local(linear, x, rows, activate));
        }
        let model = self.model;
        let mut packed = pool::take(rows.div_ceil(4) * 4 * k);
        pack_rows(x, rows, k, k, &mut packed);
        let packed = Arc::new(packed);
        let panels = n / PANEL;
        let per = panels.div_ceil(threads);
        let firsts: Vec<usize> = (0..panels).step_by(per).collect();
        let tasks: Vec<Task> = firsts
            .iter()
            .map(|&first| {
                let (model, packed) = (model.clone(), packed.clone());
                Box::new(move || {
                    let linear = which.of(&model.layers[l]);
                    let count = per.min(panels - first);
                    let cols = count * PANEL;
                    let mut part = pool::take(rows * cols);
                    part.resize(rows * cols, 0.0);
                    let weights = &linear.panels[first * k..(first + count) * k];
                    let bias = &linear.bias[first * PANEL..first * PANEL + cols];
                    matmul_panels(&packed, rows, k, weights, bias, &mut part, cols);
                    if activate {
                        gelu(&mut part);
                    }
                    part
                }) as Task
            })
            .collect();
        let parts = self.team.run(tasks)?;
        recycle(packed);
        // Each part is row-major over its own columns; rows are stitched together with one copy per part.
        let mut out = pool::take(rows * n);
        for r in 0..rows {
            for part in &parts {
                let cols = part.len() / rows;
                out.extend_from_slice(&part[r * cols..(r + 1) * cols]);
            }
        }
        parts.into_iter().for_each(pool::give);
        Ok(out)
    }

    /// Attention of every head over every sequence: `rows` rows of context (rows × hidden, in order). The
    /// team shares out query rows, in contiguous ranges of about equal work, so each part is a run of whole
    /// output rows and the parts are simply laid end to end.
    fn attention(
        &self,
        qkv: &Arc<Vec<f32>>,
        spans: &Arc<Vec<(usize, usize)>>,
        rows: usize,
    ) -> Result<Vec<f32>, String> {
        let shape = self.model.shape;
        // A query row costs about its sequence's length.
        let work: usize = spans.iter().map(|&(_, len)| len * len).sum();
        let groups = if work * shape.hidden >= PARALLEL_MIN_MACS / 8 { self.team.threads().min(rows) } else { 1 };
        let mut bounds = vec![0];
        let mut done = 0;
        for &(start, len) in spans.iter() {
            for r in start..start + len {
                done += len;
                if bounds.len() < groups && done * groups >= work * bounds.len() && r + 1 < rows {
                    bounds.push(r + 1);
                }
            }
        }
        bounds.push(rows);
        let tasks: Vec<Task> = bounds
            .windows(2)
            .map(|w| {
                let (from, to) = (w[0], w[1]);
                let (spans, qkv) = (spans.clone(), qkv.clone());
                Box::new(move || attend(&qkv, &spans, from, to, shape)) as Task
            })
            .collect();
        join(self.team.run(tasks)?, rows * shape.hidden)
    }
}

/// A forward pass in which each thread takes a contiguous range of rows through whole layers (see the
/// module's documentation).
pub(super) fn forward_by_rows(model: &Arc<Model>, team: &Team, sequences: &[&[u32]]) -> Result<Vec<Vec<f32>>, String> {
    let m = &**model;
    let h = m.shape.hidden;
    let (x, spans) = embed_input(m, sequences)?;
    let rows = x.len() / h;
    let threads = team.threads().min(rows).max(1);
    let bounds: Vec<usize> = (0..=threads).map(|t| rows * t / threads).collect();
    let ranges: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
    let mut x = Arc::new(x);
    // The first layer's q, k and v; each layer's task then ends with the next layer's.
    let tasks: Vec<Task> = ranges
        .iter()
        .map(|&(from, to)| {
            let (model, x) = (model.clone(), x.clone());
            Box::new(move || matmul_local(&model.layers[0].qkv, &x[from * h..to * h], to - from, false)) as Task
        })
        .collect();
    let mut qkv = Arc::new(join(team.run(tasks)?, rows * 3 * h)?);
    for l in 0..m.layers.len() {
        let last = l + 1 == m.layers.len();
        let tasks: Vec<Task> = ranges
            .iter()
            .map(|&(from, to)| {
                let (model, x, qkv, spans) = (model.clone(), x.clone(), qkv.clone(), spans.clone());
                Box::new(move || layer_rows(&model, l, &qkv, &x[from * h..to * h], &spans, from, to)) as Task
            })
            .collect();
        let parts = team.run(tasks)?;
        recycle(qkv);
        recycle(x);
        // Each part is the range's output rows, then (but for the last layer) its next q, k and v.
        let mut out = pool::take(rows * h);
        let mut next = pool::take(if last { 0 } else { rows * 3 * h });
        for (part, &(from, to)) in parts.into_iter().zip(&ranges) {
            let (own, ahead) = part.split_at(((to - from) * h).min(part.len()));
            out.extend_from_slice(own);
            next.extend_from_slice(ahead);
            pool::give(part);
        }
        if out.len() != rows * h || (!last && next.len() != rows * 3 * h) {
            return Err("an encoder task returned a part of the wrong size".into());
        }
        x = Arc::new(out);
        qkv = Arc::new(next);
    }
    recycle(qkv);
    Ok(pool_all(x, &spans, h))
}

/// Layer `l` for the rows `from..to`: attention over the whole sequences (`qkv`, every row), then the rest
/// of the layer on the range's own rows (`x`, their input), and the next layer's q, k and v if there is one.
fn layer_rows(
    model: &Model,
    l: usize,
    qkv: &[f32],
    x: &[f32],
    spans: &[(usize, usize)],
    from: usize,
    to: usize,
) -> Vec<f32> {
    let (layer, eps, rows) = (&model.layers[l], model.shape.eps, to - from);
    let ctx = attend(qkv, spans, from, to, model.shape);
    let mut attended = matmul_local(&layer.attn_out, &ctx, rows, false);
    pool::give(ctx);
    add_layer_norm(&mut attended, x, &layer.attn_norm.gamma, &layer.attn_norm.beta, eps);
    let up = matmul_local(&layer.up, &attended, rows, true);
    let mut out = matmul_local(&layer.down, &up, rows, false);
    pool::give(up);
    add_layer_norm(&mut out, &attended, &layer.out_norm.gamma, &layer.out_norm.beta, eps);
    pool::give(attended);
    if let Some(next) = model.layers.get(l + 1) {
        let qkv = matmul_local(&next.qkv, &out, rows, false);
        out.extend_from_slice(&qkv);
        pool::give(qkv);
    }
    out
}

/// Each sequence's `(first row, length)` in a batch's rows.
type Spans = Arc<Vec<(usize, usize)>>;

/// The input rows of a batch (word + position + token-type embeddings, layer-normed) and its spans. The
/// error names the first sequence or token id out of range.
fn embed_input(m: &Model, sequences: &[&[u32]]) -> Result<(Vec<f32>, Spans), String> {
    let h = m.shape.hidden;
    let rows: usize = sequences.iter().map(|s| s.len()).sum();
    let mut spans = Vec::with_capacity(sequences.len());
    let mut x = pool::take(rows * h);
    x.resize(rows * h, 0.0);
    let mut start = 0;
    for seq in sequences {
        if seq.is_empty() || seq.len() > m.shape.positions {
            return Err(format!("a sequence has {} tokens; 1 to {} are accepted", seq.len(), m.shape.positions));
        }
        for (t, &id) in seq.iter().enumerate() {
            let id = id as usize;
            if id >= m.shape.vocab {
                return Err(format!("token id {id} is outside the vocabulary of {}", m.shape.vocab));
            }
            let row = &mut x[(start + t) * h..(start + t + 1) * h];
            let (word, pos) = (&m.word[id * h..(id + 1) * h], &m.position[t * h..(t + 1) * h]);
            for (((v, a), b), c) in row.iter_mut().zip(word).zip(pos).zip(&m.token_type) {
                *v = a + b + c;
            }
        }
        spans.push((start, seq.len()));
        start += seq.len();
    }
    layer_norm(&mut x, &m.embed_norm.gamma, &m.embed_norm.beta, m.shape.eps);
    Ok((x, Arc::new(spans)))
}

/// `x · Wᵀ + b` (then GELU if `activate`) on this thread, for `rows` rows of `x`.
fn matmul_local(linear: &Linear, x: &[f32], rows: usize, activate: bool) -> Vec<f32> {
    let (k, n) = (linear.inputs, linear.outputs);
    let mut out = pool::take(rows * n);
    out.resize(rows * n, 0.0);
    let mut packed = pool::take(rows.div_ceil(4) * 4 * k);
    pack_rows(x, rows, k, k, &mut packed);
    matmul_panels(&packed, rows, k, &linear.panels, &linear.bias, &mut out, n);
    pool::give(packed);
    if activate {
        gelu(&mut out);
    }
    out
}

/// The context rows `from..to` (every head) of a batch whose fused `[q | k | v]` rows are `qkv`.
fn attend(qkv: &[f32], spans: &[(usize, usize)], from: usize, to: usize, shape: Shape) -> Vec<f32> {
    let h = shape.hidden;
    let mut out = pool::take((to - from) * h);
    out.resize((to - from) * h, 0.0);
    let mut scratch = pool::take(0);
    let width = h / shape.heads;
    let scale = 1.0 / (width as f32).sqrt();
    for &(start, len) in spans.iter().filter(|&&(start, len)| start < to && start + len > from) {
        let (first, last) = (from.max(start) - start, to.min(start + len) - start);
        let seq = &qkv[start * 3 * h..(start + len) * 3 * h];
        let dst = &mut out[(start + first - from) * h..];
        for head in 0..shape.heads {
            let view = Head { row: 3 * h, hidden: h, offset: head * width, width, seq: len, scale };
            attention(seq, view, first, last - first, &mut scratch, dst);
        }
    }
    pool::give(scratch);
    out
}

/// The parts laid end to end (a single part is used as it is), checking the total.
fn join(mut parts: Vec<Vec<f32>>, total: usize) -> Result<Vec<f32>, String> {
    let joined = if parts.len() == 1 {
        parts.pop().unwrap_or_default()
    } else {
        let mut joined = pool::take(total);
        for part in parts {
            joined.extend_from_slice(&part);
            pool::give(part);
        }
        joined
    };
    if joined.len() != total {
        return Err(format!("encoder tasks returned {} values, expected {total}", joined.len()));
    }
    Ok(joined)
}

/// Gives an activation buffer back to this thread's pool once no task holds it.
fn recycle(buffer: Arc<Vec<f32>>) {
    if let Ok(buffer) = Arc::try_unwrap(buffer) {
        pool::give(buffer);
    }
}

/// Each sequence's mean-pooled, L2-normalised embedding.
fn pool_all(x: Arc<Vec<f32>>, spans: &[(usize, usize)], h: usize) -> Vec<Vec<f32>> {
    let pooled = spans.iter().map(|&(start, len)| mean_pool(&x[start * h..(start + len) * h], h)).collect();
    recycle(x);
    pooled
}

/// Mean of the rows, then L2 normalisation.
fn mean_pool(rows: &[f32], width: usize) -> Vec<f32> {
    let mut mean = vec![0f32; width];
    let n = (rows.len() / width).max(1);
    for row in rows.chunks_exact(width) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v;
        }
    }
    let inv = 1.0 / n as f32;
    mean.iter_mut().for_each(|m| *m *= inv);
    let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    mean.iter_mut().for_each(|m| *m /= norm);
    mean
}
