//! The fast CPU forward pass of BERT (all-MiniLM-L6-v2), written for one job: embedding short prompts.
//!
//! - Weights are packed once at load into the panel layout the matmul kernel streams (no per-call re-pack
//!   of transposed views), and Q, K and V are one fused matmul.
//! - A batch is a list of sequences laid end to end, not a padded rectangle: there is no attention mask and
//!   no work on padding, and each text's result cannot depend on its batch.
//! - Work is shared out across a team of spinning helper threads ([`team`]): by sequences for batches, by
//!   attention heads within a pass for a single prompt ([`pass`]).

mod kernels;
mod linear;
mod load;
mod pass;
mod pool;
mod team;

use std::fs::File;
use std::sync::Arc;

use crate::Precision;

use kernels::{MAX_HEAD_WIDTH, PANEL};
use linear::Linear;
use load::SafetensorsFile;
use pass::Pass;
use team::{Task, Team};

/// Rows per thread from which a batch of several sequences is split by sequences (each thread runs whole
/// passes over its share and streams every weight) rather than within one pass.
const SEQUENCE_SPLIT_MIN: usize = 32;

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
    /// What a split of a layer's inputs across threads must keep whole: a panel of 16 (f32), a quantisation
    /// block of 32 (int8).
    split_granule: usize,
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

/// Reads the named tensors of a safetensors file, checking each one's size, and packs `Linear` layers for a
/// precision.
struct Weights<'a>(SafetensorsFile<'a>, Precision);

impl Weights<'_> {
    /// The tensor's values, read from the file.
    fn take_all(&mut self, name: &str) -> Result<Vec<f32>, String> {
        self.0.read(name)
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
        Linear::new(&weight, bias, outputs, inputs, self.1)
    }
}

impl FastBert {
    /// Builds the model from an open `model.safetensors` (names as in Hugging Face's `BertModel`, with or
    /// without a `bert.` prefix; F32 values), to run on `threads` threads, its matmuls in `precision`. Each
    /// tensor is read straight into the vector that keeps it ([`load`]), with positional reads only, so
    /// another thread may read the same handle meanwhile. The error says which tensor is missing or has the
    /// wrong size. The file's digest is not checked here.
    pub fn from_file(file: &File, shape: Shape, threads: usize, precision: Precision) -> Result<Self, String> {
        let mut file = SafetensorsFile::open(file)?;
        file.strip_prefix("embeddings.word_embeddings.weight", "bert.");
        let mut w = Weights(file, precision);
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
        let split_granule = match precision {
            Precision::F32 => PANEL,
            Precision::Int8 => kernels::int8::BLOCK,
        };
        let model = Model {
            shape,
            split_granule,
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
    /// A batch with enough rows to keep every thread busy, in sequences that can be dealt out evenly, is
    /// split by sequences: each thread runs whole passes over its share, with no hand-offs at all. Anything
    /// else (one prompt, typically) runs one pass split by attention heads ([`Pass::forward`]).
    pub fn embed(&self, sequences: &[&[u32]]) -> Result<Vec<Vec<f32>>, String> {
        let threads = self.team.threads();
        let rows: usize = sequences.iter().map(|s| s.len()).sum();
        let pass = Pass { model: &self.model, team: &self.team };
        if threads < 2 || sequences.len() < 2 || rows < SEQUENCE_SPLIT_MIN * threads {
            return pass.forward(sequences);
        }
        // Contiguous groups of about rows / threads tokens each (so outputs stay in order), as the index of
        // each group's first sequence; copied out only if the split is used.
        let mut starts = vec![0];
        let mut filled = 0;
        for (i, seq) in sequences.iter().enumerate() {
            if filled >= rows * starts.len() / threads && starts.len() < threads && starts.last() != Some(&i) {
                starts.push(i);
            }
            filled += seq.len();
        }
        starts.push(sequences.len());
        let group_rows = |w: &[usize]| sequences[w[0]..w[1]].iter().map(|s| s.len()).sum::<usize>();
        let largest = starts.windows(2).map(group_rows).max().unwrap_or(rows);
        let even = starts.len() == threads + 1 && largest * threads * 4 <= rows * 5;
        if !even {
            return pass.forward(sequences);
        }
        let groups = starts.windows(2).map(|w| sequences[w[0]..w[1]].iter().map(|s| s.to_vec()).collect::<Vec<_>>());
        let hidden = self.model.shape.hidden;
        let tasks: Vec<Task> = groups
            .map(|group: Vec<Vec<u32>>| {
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
