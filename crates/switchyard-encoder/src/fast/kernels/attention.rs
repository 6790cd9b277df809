//! Scaled dot-product attention of one head over one sequence, for a range of its queries. Scores are a
//! small matmul against the head's keys transposed (so they vectorise across keys, with no horizontal sums),
//! four queries at a time; the weighted sum of values runs two queries at a time.

use super::{exp, madd};

/// The widest attention head [`attention`] handles (its width must also be a multiple of 8).
pub const MAX_HEAD_WIDTH: usize = 64;

/// Keys per vector step of the score loop (two AVX registers).
const KEYS: usize = 16;
/// Queries whose scores are computed together.
const QUERIES: usize = 4;

/// Where one head's slices sit in a sequence's fused `[q | k | v]` rows.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    /// Values per row (3 × hidden).
    pub row: usize,
    /// Hidden size (the distance from q to k, and from k to v, and the width of an output row).
    pub hidden: usize,
    /// The head's first column within q (and k, and v, and the output rows).
    pub offset: usize,
    /// The head's width: a multiple of 8, at most [`MAX_HEAD_WIDTH`].
    pub width: usize,
    /// Tokens in the sequence.
    pub seq: usize,
    /// 1 / √(head width).
    pub scale: f32,
}

multiversion! {
    /// Attention of the head `head` for the queries `first .. first + count` of one sequence: `qkv` holds the
    /// sequence's rows of `[q | k | v]`; query `first + i`'s context goes to `out[i * hidden + offset ..]`
    /// (`width` values). `scratch` is reused memory.
    pub fn attention(qkv: &[f32], head: Head, first: usize, count: usize, scratch: &mut Vec<f32>, out: &mut [f32]) => attention_impl
}

#[inline(always)]
fn attention_impl<const FMA: bool>(
    qkv: &[f32],
    head: Head,
    first: usize,
    count: usize,
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) {
    macro_rules! widths {
        ($($w:literal)*) => {
            match head.width {
                $($w => for_width::<FMA, $w>(qkv, head, first, count, scratch, out),)*
                _ => {}
            }
        };
    }
    widths!(8 16 24 32 40 48 56 64);
}

#[inline(always)]
fn for_width<const FMA: bool, const W: usize>(
    qkv: &[f32],
    head: Head,
    first: usize,
    count: usize,
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) {
    let Head { row, hidden, offset, seq, scale, .. } = head;
    if count == 0 || first + count > seq || qkv.len() < seq * row || out.len() < (count - 1) * hidden + offset + W {
        return;
    }
    let part = |i: usize, which: usize| -> &[f32; W] {
        let start = i * row + which * hidden + offset;
        <&[f32; W]>::try_from(&qkv[start..start + W]).unwrap_or(&[0.0; W])
    };
    // Keys transposed and pre-scaled (`keys` values per line, padded with zeros), a score block, and the
    // values side by side (the rows of `qkv` are far apart: read in place, each value would cost a cache
    // miss per query pair).
    let keys = seq.div_ceil(KEYS) * KEYS;
    scratch.clear();
    scratch.resize(W * keys + QUERIES * keys + seq * W, 0.0);
    let (transposed, rest) = scratch.split_at_mut(W * keys);
    let (scores, values) = rest.split_at_mut(QUERIES * keys);
    for j in 0..seq {
        for (d, &k) in part(j, 1).iter().enumerate() {
            transposed[d * keys + j] = k * scale;
        }
    }
    let values = values.as_chunks_mut::<W>().0;
    for (j, v) in values.iter_mut().enumerate() {
        *v = *part(j, 2);
    }
    let transposed = transposed.as_chunks::<KEYS>().0;
    let lines = keys / KEYS;
    for block in (first..first + count).step_by(QUERIES) {
        let valid = (first + count - block).min(QUERIES);
        // Missing queries of the last block repeat its last one; their results are not used.
        let q: [&[f32; W]; QUERIES] = std::array::from_fn(|r| part(block + r.min(valid - 1), 0));
        for c in 0..lines {
            let mut acc = [[0f32; KEYS]; QUERIES];
            for d in 0..W {
                let k = &transposed[d * lines + c];
                for r in 0..QUERIES {
                    for l in 0..KEYS {
                        acc[r][l] = madd::<FMA>(q[r][d], k[l], acc[r][l]);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                scores[r * keys + c * KEYS..][..KEYS].copy_from_slice(acc);
            }
        }
        for r in 0..valid {
            softmax::<FMA>(&mut scores[r * keys..r * keys + seq]);
        }
        for r in (0..valid).step_by(2) {
            let pair = if r + 1 < valid { 2 } else { 1 };
            let mut acc = [[0f32; W]; 2];
            let (first_scores, second_scores) = (&scores[r * keys..][..seq], &scores[(r + pair - 1) * keys..][..seq]);
            for ((v, &p0), &p1) in values.iter().zip(first_scores).zip(second_scores) {
                let p = [p0, p1];
                for (a, p) in acc.iter_mut().zip(p) {
                    for l in 0..W {
                        a[l] = madd::<FMA>(p, v[l], a[l]);
                    }
                }
            }
            for (i, acc) in acc.iter().enumerate().take(pair) {
                let at = (block - first + r + i) * hidden + offset;
                out[at..at + W].copy_from_slice(acc);
            }
        }
    }
}

/// `s = softmax(s)`, in lanes of eight.
#[inline(always)]
fn softmax<const FMA: bool>(s: &mut [f32]) {
    let mut lanes = [f32::MIN; 8];
    let (chunks, rest) = s.as_chunks::<8>();
    for c in chunks {
        for l in 0..8 {
            lanes[l] = if c[l] > lanes[l] { c[l] } else { lanes[l] };
        }
    }
    let max = rest.iter().chain(&lanes).fold(f32::MIN, |m, &v| if v > m { v } else { m });
    let mut sums = [0f32; 8];
    let (chunks, rest) = s.as_chunks_mut::<8>();
    for c in chunks {
        for l in 0..8 {
            c[l] = exp::<FMA>(c[l] - max);
            sums[l] += c[l];
        }
    }
    let mut total = sums.iter().sum::<f32>();
    for v in rest.iter_mut() {
        *v = exp::<FMA>(*v - max);
        total += *v;
    }
    let inv = 1.0 / total;
    s.iter_mut().for_each(|v| *v *= inv);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attention straight from its definition, in f64.
    fn reference(qkv: &[f32], head: Head, i: usize) -> Vec<f64> {
        let Head { row, hidden, offset, width, seq, scale } = head;
        let at = |t: usize, which: usize, d: usize| f64::from(qkv[t * row + which * hidden + offset + d]);
        let scores: Vec<f64> =
            (0..seq).map(|j| (0..width).map(|d| at(i, 0, d) * at(j, 1, d)).sum::<f64>() * f64::from(scale)).collect();
        let max = scores.iter().cloned().fold(f64::MIN, f64::max);
        let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let total: f64 = weights.iter().sum();
        (0..width).map(|d| (0..seq).map(|j| weights[j] / total * at(j, 2, d)).sum()).collect()
    }

    #[test]
    fn matches_the_definition_for_every_width_length_and_query_range() {
        let hidden = 128;
        for width in [8, 32, 64] {
            for seq in [1, 2, 3, 5, 15, 16, 17, 40] {
                let row = 3 * hidden;
                let qkv: Vec<f32> = (0..seq * row).map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0).collect();
                let head = Head { row, hidden, offset: width, width, seq, scale: 1.0 / (width as f32).sqrt() };
                for (first, count) in [(0, seq), (seq / 2, seq - seq / 2), (seq - 1, 1)] {
                    let mut out = vec![0f32; count * hidden];
                    attention(&qkv, head, first, count, &mut Vec::new(), &mut out);
                    for i in 0..count {
                        let want = reference(&qkv, head, first + i);
                        let got = &out[i * hidden + width..i * hidden + 2 * width];
                        for (g, w) in got.iter().zip(&want) {
                            assert!((f64::from(*g) - w).abs() < 1e-5, "width {width}, seq {seq}, query {}", first + i);
                        }
                        let outside = out[i * hidden..i * hidden + width]
                            .iter()
                            .chain(&out[i * hidden + 2 * width..(i + 1) * hidden]);
                        assert!(outside.clone().all(|v| *v == 0.0), "only the head's columns are written");
                    }
                }
            }
        }
    }

    #[test]
    fn a_two_token_example_by_hand() {
        // One head of width 8 over 2 tokens; hidden 8, so rows are [q | k | v] of 8 values each.
        let mut qkv = vec![0f32; 2 * 24];
        let (q, k, v) = ([[1.0f32, 0.0], [0.0, 1.0]], [[1.0f32, 0.0], [0.0, 1.0]], [[1.0f32, 2.0], [3.0, 4.0]]);
        for t in 0..2 {
            qkv[t * 24..t * 24 + 2].copy_from_slice(&q[t]);
            qkv[t * 24 + 8..t * 24 + 10].copy_from_slice(&k[t]);
            qkv[t * 24 + 16..t * 24 + 18].copy_from_slice(&v[t]);
        }
        let mut out = vec![0f32; 16];
        let head = Head { row: 24, hidden: 8, offset: 0, width: 8, seq: 2, scale: 1.0 };
        attention(&qkv, head, 0, 2, &mut Vec::new(), &mut out);
        // Token 0 scores (1, 0) → softmax (e/(e+1), 1/(e+1)); token 1 scores (0, 1).
        let p = std::f32::consts::E / (std::f32::consts::E + 1.0);
        let want = [p * 1.0 + (1.0 - p) * 3.0, p * 2.0 + (1.0 - p) * 4.0];
        assert!((out[0] - want[0]).abs() < 1e-6 && (out[1] - want[1]).abs() < 1e-6, "{out:?}");
        let want = [(1.0 - p) * 1.0 + p * 3.0, (1.0 - p) * 2.0 + p * 4.0];
        assert!((out[8] - want[0]).abs() < 1e-6 && (out[9] - want[1]).abs() < 1e-6, "{out:?}");
        assert!(out[2..8].iter().chain(&out[10..]).all(|v| *v == 0.0));
    }
}
