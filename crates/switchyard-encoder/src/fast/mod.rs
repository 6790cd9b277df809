//! The fast CPU forward pass of BERT (all-MiniLM-L6-v2), written for one job: embedding short prompts.
//!
//! - Weights are packed once at load into the panel layout the matmul kernel streams (no per-call re-pack
//!   of transposed views), and Q, K and V are one fused matmul.
//! - A batch is a list of sequences laid end to end, not a padded rectangle: there is no attention mask and
//!   no work on padding, and each text's result cannot depend on its batch.
//! - Matmuls split across a team of spinning helper threads ([`team`]): by output panels when rows are few
//!   (batch 1), by rows when many; attention splits by query rows.

mod kernels;
mod pool;
mod team;

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::Tensor;

use kernels::{
    add_layer_norm, attention, gelu, layer_norm, matmul_panels, pack_panels, pack_rows, Head, Line, MAX_HEAD_WIDTH,
    PANEL,
};
use team::{Task, Team};

/// Rows per thread from which a matmul splits by rows (each thread then streams every weight) rather than by
/// output panels (each thread streams its share of the weights once).
const ROW_SPLIT_MIN: usize = 256;

/// Below this many multiply-adds a matmul runs on one thread (splitting costs more than it saves).
const PARALLEL_MIN_MACS: usize = 400_000;

/// The model's shape, from its `config.json`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Hidden size (384).
    pub hidden: usize,
    /// Attention heads (12).
    pub heads: usize,
    /// Feed-forward size (1536).
    pub intermediate: usize,
    /// Layers (6).
    pub layers: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Position embeddings (512).
    pub positions: usize,
    /// Layer-norm epsilon.
    pub eps: f32,
}

struct Linear {
    panels: Vec<Line>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    qkv: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    up: Linear,
    down: Linear,
    out_norm: Norm,
}

/// The weights, shared with helper threads.
struct Model {
    shape: Shape,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embed_norm: Norm,
    layers: Vec<Layer>,
}

/// BERT with weights packed for the kernels in [`kernels`], and the threads that run it.
pub struct FastBert {
    model: Arc<Model>,
    team: Team,
}

impl std::fmt::Debug for FastBert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastBert").field("shape", &self.model.shape).field("team", &self.team).finish_non_exhaustive()
    }
}

/// Which matmul of a layer.
#[derive(Debug, Clone, Copy)]
enum Which {
    Qkv,
    AttnOut,
    Up,
    Down,
}

impl Which {
    fn of(self, layer: &Layer) -> &Linear {
        match self {
            Self::Qkv => &layer.qkv,
            Self::AttnOut => &layer.attn_out,
            Self::Up => &layer.up,
            Self::Down => &layer.down,
        }
    }
}

/// Reads the named tensors of a safetensors file, checking each one's size.
struct Weights(HashMap<String, Tensor>);

impl Weights {
    /// The tensor's values (removed from the map, so its memory goes as soon as it is copied).
    fn take_all(&mut self, name: &str) -> Result<Vec<f32>, String> {
        let t = self.0.remove(name).ok_or_else(|| format!("tensor {name} is missing"))?;
        t.flatten_all()
            .and_then(|t| t.to_dtype(candle_core::DType::F32))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| format!("tensor {name}: {e}"))
    }

    /// As [`Weights::take_all`], checking the number of values.
    fn take(&mut self, name: &str, len: usize) -> Result<Vec<f32>, String> {
        let values = self.take_all(name)?;
        if values.len() != len {
            return Err(format!("tensor {name} has {} values, expected {len}", values.len()));
        }
        Ok(values)
    }

    fn norm(&mut self, prefix: &str, width: usize) -> Result<Norm, String> {
        Ok(Norm {
            gamma: self.take(&format!("{prefix}.weight"), width)?,
            beta: self.take(&format!("{prefix}.bias"), width)?,
        })
    }

    /// One or more `Linear` layers with the same input, fused into one matmul (outputs concatenated).
    fn linear(&mut self, prefixes: &[String], inputs: usize, outputs: usize) -> Result<Linear, String> {
        let mut weight = Vec::with_capacity(prefixes.len() * outputs * inputs);
        let mut bias = Vec::with_capacity(prefixes.len() * outputs);
        for p in prefixes {
            weight.extend(self.take(&format!("{p}.weight"), outputs * inputs)?);
            bias.extend(self.take(&format!("{p}.bias"), outputs)?);
        }
        let outputs = outputs * prefixes.len();
        if !outputs.is_multiple_of(PANEL) {
            return Err(format!("{} outputs is not a multiple of {PANEL}", outputs));
        }
        Ok(Linear { panels: pack_panels(&weight, outputs, inputs), bias, inputs, outputs })
    }
}

impl FastBert {
    /// Builds the model from the bytes of `model.safetensors` (names as in Hugging Face's `BertModel`, with or
    /// without a `bert.` prefix), to run on `threads` threads. The error says which tensor is missing or has
    /// the wrong size.
    pub fn from_safetensors(bytes: Vec<u8>, shape: Shape, threads: usize) -> Result<Self, String> {
        let mut tensors =
            candle_core::safetensors::load_buffer(&bytes, &candle_core::Device::Cpu).map_err(|e| e.to_string())?;
        // The file's bytes are copied into tensors: free them before the weights are copied again below.
        drop(bytes);
        if !tensors.contains_key("embeddings.word_embeddings.weight") {
            tensors =
                tensors.into_iter().map(|(k, v)| (k.strip_prefix("bert.").unwrap_or(&k).to_string(), v)).collect();
        }
        let mut w = Weights(tensors);
        let h = shape.hidden;
        if shape.heads == 0
            || !h.is_multiple_of(shape.heads)
            || !(h / shape.heads).is_multiple_of(8)
            || h / shape.heads > MAX_HEAD_WIDTH
        {
            return Err(format!("hidden size {h} over {} heads is not supported", shape.heads));
        }
        let mut layers = Vec::with_capacity(shape.layers);
        for l in 0..shape.layers {
            let p = format!("encoder.layer.{l}");
            let qkv = ["query", "key", "value"].map(|n| format!("{p}.attention.self.{n}"));
            layers.push(Layer {
                qkv: w.linear(&qkv, h, h)?,
                attn_out: w.linear(&[format!("{p}.attention.output.dense")], h, h)?,
                attn_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                up: w.linear(&[format!("{p}.intermediate.dense")], h, shape.intermediate)?,
                down: w.linear(&[format!("{p}.output.dense")], shape.intermediate, h)?,
                out_norm: w.norm(&format!("{p}.output.LayerNorm"), h)?,
            });
        }
        let token_types = w.take_all("embeddings.token_type_embeddings.weight")?;
        if token_types.len() < h || !token_types.len().is_multiple_of(h) {
            return Err(format!("tensor embeddings.token_type_embeddings.weight has {} values", token_types.len()));
        }
        let model = Model {
            shape,
            word: w.take("embeddings.word_embeddings.weight", shape.vocab * h)?,
            position: w.take("embeddings.position_embeddings.weight", shape.positions * h)?,
            token_type: token_types[..h].to_vec(),
            embed_norm: w.norm("embeddings.LayerNorm", h)?,
            layers,
        };
        Ok(Self { model: Arc::new(model), team: Team::new(threads) })
    }

    /// Mean-pooled, L2-normalised embeddings of token-id sequences (each with its special tokens). Every
    /// sequence must be non-empty, no longer than the position table, with ids inside the vocabulary.
    ///
    /// A batch big enough to keep every thread busy is split by sequences: each thread runs whole passes
    /// over its share, with no hand-offs at all. Smaller batches (one prompt, typically) run one pass whose
    /// matmuls and attention are split across the threads.
    pub fn embed(&self, sequences: &[&[u32]]) -> Result<Vec<Vec<f32>>, String> {
        let threads = self.team.threads();
        let rows: usize = sequences.iter().map(|s| s.len()).sum();
        if threads < 2 || sequences.len() < 2 || rows < ROW_SPLIT_MIN * threads {
            return Pass { model: &self.model, team: &self.team }.forward(sequences);
        }
        // Contiguous groups of about rows / threads tokens each, so outputs stay in order.
        let mut groups: Vec<Vec<Vec<u32>>> = vec![Vec::new()];
        let mut filled = 0;
        for seq in sequences {
            let target = rows * groups.len() / threads;
            if filled >= target && groups.len() < threads && !groups.last().is_some_and(Vec::is_empty) {
                groups.push(Vec::new());
            }
            filled += seq.len();
            if let Some(group) = groups.last_mut() {
                group.push(seq.to_vec());
            }
        }
        let hidden = self.model.shape.hidden;
        let tasks: Vec<Task> = groups
            .into_iter()
            .map(|group| {
                let model = self.model.clone();
                Box::new(move || {
                    let refs: Vec<&[u32]> = group.iter().map(Vec::as_slice).collect();
                    // An error comes back as an empty output, which the length check below reports.
                    Pass { model: &model, team: &Team::new(1) }.forward(&refs).map(|e| e.concat()).unwrap_or_default()
                }) as Task
            })
            .collect();
        let flat: Vec<f32> = self.team.run(tasks)?.concat();
        if flat.len() != sequences.len() * hidden {
            // Re-run serially to get the error message of the failing sequence.
            return Pass { model: &self.model, team: &Team::new(1) }.forward(sequences);
        }
        Ok(flat.chunks_exact(hidden).map(<[f32]>::to_vec).collect())
    }
}

/// One forward pass: the model and the threads it may use.
struct Pass<'a> {
    model: &'a Arc<Model>,
    team: &'a Team,
}

impl Pass<'_> {
    /// Embeddings of the sequences, with matmuls and attention split across the pass's team.
    fn forward(&self, sequences: &[&[u32]]) -> Result<Vec<Vec<f32>>, String> {
        let m = &**self.model;
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
        let spans = Arc::new(spans);
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
        let pooled = spans.iter().map(|&(start, len)| mean_pool(&x[start * h..(start + len) * h], h)).collect();
        recycle(x);
        Ok(pooled)
    }

    /// One matmul of layer `l` (`x · Wᵀ + b`, then GELU for the feed-forward's first half), split across the
    /// team by output panels: each thread streams its share of the weights once.
    fn matmul(&self, x: &Arc<Vec<f32>>, rows: usize, l: usize, which: Which) -> Result<Vec<f32>, String> {
        let linear = which.of(&self.model.layers[l]);
        let (k, n) = (linear.inputs, linear.outputs);
        let threads = self.team.threads();
        let activate = matches!(which, Which::Up);
        if threads == 1 || rows * k * n < PARALLEL_MIN_MACS {
            let mut out = pool::take(rows * n);
            out.resize(rows * n, 0.0);
            let mut packed = pool::take(rows.div_ceil(4) * 4 * k);
            pack_rows(x, rows, k, k, &mut packed);
            matmul_panels(&packed, rows, k, &linear.panels, &linear.bias, &mut out, n);
            pool::give(packed);
            if activate {
                gelu(&mut out);
            }
            return Ok(out);
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
        let h = shape.hidden;
        // A query row costs about its sequence's length.
        let work: usize = spans.iter().map(|&(_, len)| len * len).sum();
        let groups = if work * h >= PARALLEL_MIN_MACS / 8 { self.team.threads().min(rows) } else { 1 };
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
                Box::new(move || {
                    let mut out = pool::take((to - from) * h);
                    out.resize((to - from) * h, 0.0);
                    let mut scratch = pool::take(0);
                    let width = h / shape.heads;
                    for &(start, len) in spans.iter().filter(|&&(start, len)| start < to && start + len > from) {
                        let (first, last) = (from.max(start) - start, to.min(start + len) - start);
                        let seq = &qkv[start * 3 * h..(start + len) * 3 * h];
                        let dst = &mut out[(start + first - from) * h..];
                        let scale = 1.0 / (width as f32).sqrt();
                        for head in 0..shape.heads {
                            let view = Head { row: 3 * h, hidden: h, offset: head * width, width, seq: len, scale };
                            attention(seq, view, first, last - first, &mut scratch, dst);
                        }
                    }
                    pool::give(scratch);
                    out
                }) as Task
            })
            .collect();
        let mut parts = self.team.run(tasks)?;
        if parts.len() == 1 {
            return Ok(parts.pop().unwrap_or_default());
        }
        let mut ctx = pool::take(rows * h);
        for part in parts {
            ctx.extend_from_slice(&part);
            pool::give(part);
        }
        Ok(ctx)
    }
}

/// Gives an activation buffer back to this thread's pool once no task holds it.
fn recycle(buffer: Arc<Vec<f32>>) {
    if let Ok(buffer) = Arc::try_unwrap(buffer) {
        pool::give(buffer);
    }
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
