//! One forward pass, each layer split across the team by attention heads (as Megatron-LM splits a
//! transformer): thread `t` computes q, k and v for its group of heads, their attention, and their share of
//! the output projection (a partial sum); then its share of the feed-forward's columns and the matching
//! partial sum of the second matmul. The calling thread adds the partial sums before each layer norm. So a
//! layer has two hand-offs, nothing is stitched together, and each weight is streamed from memory by one
//! thread only (for a prompt or two, streaming the weights is what a pass costs).

use std::sync::Arc;

use super::kernels::{add_layer_norm, attention, gelu, layer_norm, Head, PANEL};
use super::linear::{Linear, Packed, Part};
use super::team::{Task, Team};
use super::{pool, Layer, Model, Shape};

/// One forward pass split by heads: the model and the threads it may use.
pub(super) struct Pass<'a> {
    pub model: &'a Arc<Model>,
    pub team: &'a Team,
}

impl Pass<'_> {
    /// Embeddings of the sequences, each layer split by groups of heads across the pass's team.
    pub fn forward(&self, sequences: &[&[u32]]) -> Result<Vec<Vec<f32>>, String> {
        let m = &**self.model;
        let (x, spans) = embed_input(m, sequences)?;
        let (h, eps) = (m.shape.hidden, m.shape.eps);
        let rows = x.len() / h;
        let groups = head_groups(m.shape, self.team.threads(), m.split_granule);
        let mut x = Arc::new(x);
        for (l, layer) in m.layers.iter().enumerate() {
            let tasks: Vec<Task> = (0..groups)
                .map(|g| {
                    let (model, x, spans) = (self.model.clone(), x.clone(), spans.clone());
                    Box::new(move || attention_share(&model, l, &x, rows, &spans, g, groups)) as Task
                })
                .collect();
            let mut attended = sum(self.team.run(tasks)?, rows * h)?;
            add_layer_norm(&mut attended, &x, &layer.attn_norm.gamma, &layer.attn_norm.beta, eps);
            recycle(x);
            let attended = Arc::new(attended);
            let tasks: Vec<Task> = (0..groups)
                .map(|g| {
                    let (model, attended) = (self.model.clone(), attended.clone());
                    Box::new(move || feed_forward_share(&model.layers[l], &attended, rows, g, groups)) as Task
                })
                .collect();
            let mut out = sum(self.team.run(tasks)?, rows * h)?;
            add_layer_norm(&mut out, &attended, &layer.out_norm.gamma, &layer.out_norm.beta, eps);
            recycle(attended);
            x = Arc::new(out);
        }
        Ok(pool_all(x, &spans, h))
    }
}

/// How many groups of heads a layer splits into for `threads` threads: the most, up to `threads`, that
/// divide the heads evenly and give each group a whole number of `granule`s (a multiple of the 16-column
/// panel: the inputs each int8 scale covers) of the hidden size and of the feed-forward.
fn head_groups(shape: Shape, threads: usize, granule: usize) -> usize {
    let granule = granule.max(PANEL);
    (1..=threads.max(1))
        .rev()
        .find(|&g| {
            shape.heads.is_multiple_of(g)
                && shape.hidden.is_multiple_of(g)
                && (shape.hidden / g).is_multiple_of(granule)
                && shape.intermediate.is_multiple_of(g)
                && (shape.intermediate / g).is_multiple_of(granule)
        })
        .unwrap_or(1)
}

/// Group `g` of `groups`' share of layer `l`'s attention block: q, k and v of its heads, their attention
/// over every sequence, and the output projection of their columns (a partial sum over the hidden size; the
/// bias is in group 0's).
fn attention_share(
    model: &Model,
    l: usize,
    x: &[f32],
    rows: usize,
    spans: &[(usize, usize)],
    g: usize,
    groups: usize,
) -> Vec<f32> {
    let (layer, shape) = (&model.layers[l], model.shape);
    let h = shape.hidden;
    let w = h / groups;
    let per = w / PANEL;
    // Every group packs the input for itself: a few microseconds in parallel, rather than a serial step on
    // the calling thread while the others wait.
    let packed = layer.qkv.pack(x, rows, h, h);
    // The group's q, k and v columns, side by side: rows of [q | k | v], each `w` wide.
    let mut qkv = pool::take(rows * 3 * w);
    qkv.resize(rows * 3 * w, 0.0);
    for part in 0..3 {
        let first = (part * h + g * w) / PANEL;
        layer.qkv.multiply(&packed, rows, Part::columns(first, per, h), &mut qkv[part * w..], 3 * w);
    }
    packed.recycle();
    let mut ctx = pool::take(rows * w);
    ctx.resize(rows * w, 0.0);
    let mut scratch = pool::take(0);
    let width = h / shape.heads;
    let scale = 1.0 / (width as f32).sqrt();
    for &(start, len) in spans {
        let seq = &qkv[start * 3 * w..(start + len) * 3 * w];
        for head in 0..shape.heads / groups {
            let view = Head { row: 3 * w, hidden: w, offset: head * width, width, seq: len, scale };
            attention(seq, view, 0, len, &mut scratch, &mut ctx[start * w..]);
        }
    }
    pool::give(scratch);
    pool::give(qkv);
    let packed = layer.attn_out.pack(&ctx, rows, w, w);
    pool::give(ctx);
    let out = partial(&layer.attn_out, &packed, rows, g * w, (g + 1) * w, g == 0);
    packed.recycle();
    out
}

/// Group `g` of `groups`' share of a layer's feed-forward: its columns of the first matmul (and GELU), and
/// the second matmul over those inputs (a partial sum; the bias is in group 0's).
fn feed_forward_share(layer: &Layer, x: &[f32], rows: usize, g: usize, groups: usize) -> Vec<f32> {
    let (h, n) = (layer.up.inputs, layer.up.outputs / groups);
    let packed = layer.up.pack(x, rows, h, h);
    let mut up = pool::take(rows * n);
    up.resize(rows * n, 0.0);
    layer.up.multiply(&packed, rows, Part::columns(g * n / PANEL, n / PANEL, h), &mut up, n);
    packed.recycle();
    gelu(&mut up);
    let packed = layer.down.pack(&up, rows, n, n);
    pool::give(up);
    let out = partial(&layer.down, &packed, rows, g * n, (g + 1) * n, g == 0);
    packed.recycle();
    out
}

/// `a · W[from..to]ᵀ` over the inputs `from..to` of a weight, for every output (with the bias if `bias`).
fn partial(linear: &Linear, packed: &Packed, rows: usize, from: usize, to: usize, bias: bool) -> Vec<f32> {
    let n = linear.outputs;
    let mut out = pool::take(rows * n);
    out.resize(rows * n, 0.0);
    linear.multiply(packed, rows, Part { first: 0, count: n / PANEL, from, to, bias }, &mut out, n);
    out
}

/// The partial sums added together (into the first), checking their sizes.
fn sum(parts: Vec<Vec<f32>>, total: usize) -> Result<Vec<f32>, String> {
    let mut parts = parts.into_iter();
    let mut out = parts.next().unwrap_or_default();
    for part in parts {
        if part.len() != out.len() {
            return Err("encoder tasks returned parts of different sizes".into());
        }
        out.iter_mut().zip(&part).for_each(|(o, p)| *o += p);
        pool::give(part);
    }
    if out.len() != total {
        return Err(format!("encoder tasks returned {} values, expected {total}", out.len()));
    }
    Ok(out)
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
