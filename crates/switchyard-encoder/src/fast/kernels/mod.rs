//! The numeric kernels of the fast encoder: a matrix multiply against weights packed at load time, GELU,
//! layer norm, softmax attention. Each kernel is written once as portable Rust and compiled twice: for the
//! baseline CPU, and with AVX2 and FMA enabled, chosen at run time. The int8 matmul ([`int8`]) adds integer
//! kernels written with intrinsics. This module holds the workspace's only `unsafe`: the call into the AVX2
//! build after the CPU has been checked to support it, and, in `int8/simd.rs`, the same for the integer
//! kernels plus their loads and stores (each with its bounds and alignment argued beside it).
#![allow(unsafe_code)]

/// Columns of one packed weight panel (two AVX registers).
pub const PANEL: usize = 16;
/// Rows of the input processed together by the matmul kernel: 12 accumulators of the 16 AVX registers.
pub const ROWS: usize = 6;
/// Rows of the blocks that end a matrix whose rows are not a multiple of [`ROWS`] (see [`row_blocks`]).
const TAIL_ROWS: usize = 4;

/// One step of a packed weight panel: 16 columns, aligned to a 64-byte cache line so each step the kernel
/// reads is exactly one line (a misaligned panel touches two lines per step).
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, align(64))]
pub struct Line(pub [f32; PANEL]);

/// Whether this CPU runs the AVX2 + FMA builds (checked once; `std` caches the answer).
#[inline]
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `pub fn $name(args)` that runs `$body::<true>` (compiled with AVX2 and FMA) when the CPU has them,
/// else `$body::<false>` (baseline build, no fused multiply-add).
macro_rules! multiversion {
    ($(#[$doc:meta])* pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:ident) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn with_avx2($($arg: $ty),*) {
                    $body::<true>($($arg),*)
                }
                if $crate::fast::kernels::has_avx2_fma() {
                    // SAFETY: `with_avx2` only needs AVX2 and FMA, and the CPU was just checked to have both.
                    return unsafe { with_avx2($($arg),*) };
                }
            }
            $body::<false>($($arg),*)
        }
    };
}

/// `a * b + c`, fused when the build has FMA (a fused multiply-add without hardware support is a slow
/// library call, so the baseline build multiplies and adds).
#[inline(always)]
pub(crate) fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

// After the macro: `attention` and `int8` use it.
mod attention;
pub mod int8;

pub use attention::{attention, Head, MAX_HEAD_WIDTH};

/// Part of a weight packed by [`pack_panels`], for [`matmul_panels`]: some of its panels (each `inputs`
/// lines long), restricted to the inputs `from..to`, with their columns' bias (empty: none).
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    /// Whole panels.
    pub panels: &'a [Line],
    /// Lines per panel (the weight's inputs).
    pub inputs: usize,
    /// First input used.
    pub from: usize,
    /// One past the last input used.
    pub to: usize,
    /// The panels' bias, 16 values per panel, or empty.
    pub bias: &'a [f32],
}

#[cfg(test)]
impl<'a> Window<'a> {
    /// All inputs of the panels `first..first + count`.
    pub fn panels(panels: &'a [Line], inputs: usize, bias: &'a [f32], first: usize, count: usize) -> Self {
        let (lines, cols) = (first * inputs..(first + count) * inputs, first * PANEL..(first + count) * PANEL);
        Self { panels: &panels[lines], inputs, from: 0, to: inputs, bias: bias.get(cols).unwrap_or_default() }
    }
}

multiversion! {
    /// `out[r][p*16 + j] = bias[p*16 + j] + Σ_k a[r][k] · w[from + k][p*16 + j]` for the panels `p` of the
    /// window `w`. `a` holds `rows` rows of `w.to - w.from` values, packed by [`pack_rows`]; `out` has `rows`
    /// rows `out_stride` apart, and the panels' columns are written from column 0.
    pub fn matmul_panels(a: &[f32], rows: usize, w: Window<'_>, out: &mut [f32], out_stride: usize) => matmul_impl
}

#[inline(always)]
fn matmul_impl<const FMA: bool>(a: &[f32], rows: usize, w: Window<'_>, out: &mut [f32], out_stride: usize) {
    let k = w.to.saturating_sub(w.from);
    if w.inputs == 0 || w.to > w.inputs {
        return;
    }
    for p in 0..w.panels.len() / w.inputs {
        let panel = &w.panels[p * w.inputs + w.from..p * w.inputs + w.to];
        let bias = w.bias.get(p * PANEL..(p + 1) * PANEL).and_then(|b| <&[f32; PANEL]>::try_from(b).ok());
        let bias = bias.unwrap_or(&[0.0; PANEL]);
        for (first, size) in row_blocks(rows) {
            let packed = a.get(first * k..(first + size) * k).unwrap_or_default();
            let out = out.get_mut(first * out_stride + p * PANEL..).unwrap_or_default();
            let valid = (rows - first).min(size);
            if size == ROWS {
                store(&row_block::<FMA, ROWS>(packed.as_chunks().0, panel, bias), valid, out, out_stride);
            } else {
                store(&row_block::<FMA, TAIL_ROWS>(packed.as_chunks().0, panel, bias), valid, out, out_stride);
            }
        }
    }
}

/// The row blocks of a matrix of `rows` rows, as (first row, rows in the block): blocks of [`ROWS`], then
/// up to two of [`TAIL_ROWS`], so that at most the last block reaches past `rows`, by at most three rows
/// (one once there are six rows or more).
fn row_blocks(rows: usize) -> impl Iterator<Item = (usize, usize)> {
    let (full, rest) = (rows / ROWS, rows % ROWS);
    let (full, tails) = match rest {
        0 => (full, 0),
        1 | 2 if full > 0 => (full - 1, 2),
        1..=4 => (full, 1),
        _ => (full + 1, 0),
    };
    (0..full).map(|b| (b * ROWS, ROWS)).chain((0..tails).map(move |t| (full * ROWS + t * TAIL_ROWS, TAIL_ROWS)))
}

/// Writes the first `valid` rows of a block's result, `out_stride` apart.
#[inline(always)]
fn store<const R: usize>(acc: &[[f32; PANEL]; R], valid: usize, out: &mut [f32], out_stride: usize) {
    for (r, acc) in acc.iter().enumerate().take(valid) {
        if let Some(dst) = out.get_mut(r * out_stride..r * out_stride + PANEL) {
            dst.copy_from_slice(acc);
        }
    }
}

/// One block of `R` rows (packed column by column) times one panel.
#[inline(always)]
fn row_block<const FMA: bool, const R: usize>(
    packed: &[[f32; R]],
    panel: &[Line],
    bias: &[f32; PANEL],
) -> [[f32; PANEL]; R] {
    let mut acc = [*bias; R];
    for (x, Line(w)) in packed.iter().zip(panel) {
        for r in 0..R {
            for j in 0..PANEL {
                acc[r][j] = madd::<FMA>(x[r], w[j], acc[r][j]);
            }
        }
    }
    acc
}

/// Packs a `[out][in]` weight (PyTorch's `Linear` layout) into panels of 16 output columns: line
/// `p*in + k` holds `w[k][p*16 .. p*16 + 16]`, so the kernel reads each panel front to back.
pub fn pack_panels(weight: &[f32], outputs: usize, inputs: usize) -> Vec<Line> {
    let mut packed = vec![Line([0.0; PANEL]); outputs.div_ceil(PANEL) * inputs];
    for o in 0..outputs {
        let (p, j) = (o / PANEL, o % PANEL);
        for i in 0..inputs {
            packed[p * inputs + i].0[j] = weight[o * inputs + i];
        }
    }
    packed
}

/// Packs `rows` rows of `k` values (row-major, `stride` apart) in the blocks of [`row_blocks`], each
/// interleaved by column: the block of `R` rows from row `f` holds `a[f + r][i]` at `f*k + i*R + r`;
/// rows past `rows` in the last block are zero.
pub fn pack_rows(a: &[f32], rows: usize, k: usize, stride: usize, packed: &mut Vec<f32>) {
    packed.clear();
    packed.resize(packed_len(rows, k), 0.0);
    for (first, size) in row_blocks(rows) {
        let block = &mut packed[first * k..(first + size) * k];
        let valid = size.min(rows - first);
        let row = |r: usize| a.get((first + r) * stride..(first + r) * stride + k).unwrap_or_default();
        match (size, valid) {
            (ROWS, ROWS) => pack_block::<ROWS>(std::array::from_fn(row), block),
            (TAIL_ROWS, TAIL_ROWS) => pack_block::<TAIL_ROWS>(std::array::from_fn(row), block),
            // The last block, part padding: left as zeros.
            _ => (0..valid).for_each(|r| row(r).iter().enumerate().for_each(|(i, &x)| block[i * size + r] = x)),
        }
    }
}

/// Values [`pack_rows`] writes for `rows` rows of `k` values (the last row block's padding included).
pub fn packed_len(rows: usize, k: usize) -> usize {
    row_blocks(rows).last().map_or(0, |(first, size)| first + size) * k
}

/// Interleaves `R` whole rows column by column into `block`, writing it front to back.
#[inline(always)]
fn pack_block<const R: usize>(rows: [&[f32]; R], block: &mut [f32]) {
    let k = block.len() / R;
    if rows.iter().any(|r| r.len() < k) {
        return;
    }
    for (i, dst) in block.as_chunks_mut::<R>().0.iter_mut().enumerate() {
        for r in 0..R {
            dst[r] = rows[r][i];
        }
    }
}

/// `e^x` to about 2 ulp for x in [-87, 88] (Cody–Waite range reduction and a degree-6 polynomial), written
/// without branches so loops over it vectorise.
#[inline(always)]
pub(crate) fn exp<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer.
    let x = x.clamp(-87.0, 88.0);
    let rounded = madd::<FMA>(x, LOG2E, ROUND);
    let n = rounded - ROUND;
    let r = madd::<FMA>(-n, LN2_LO, madd::<FMA>(-n, LN2_HI, x));
    let mut p = 1.987_569_1e-4;
    p = madd::<FMA>(p, r, 1.398_199_9e-3);
    p = madd::<FMA>(p, r, 8.333_452e-3);
    p = madd::<FMA>(p, r, 4.166_579_6e-2);
    p = madd::<FMA>(p, r, 1.666_666_5e-1);
    p = madd::<FMA>(p, r, 0.5);
    p = madd::<FMA>(p, r * r, r) + 1.0;
    // `rounded`'s low mantissa bits hold n itself (offset by 2^22), so 2^n is built with integer adds and
    // a shift; `n as i32` would be a saturating conversion that keeps this loop from vectorising.
    let scale = f32::from_bits(rounded.to_bits().wrapping_sub(0x4B40_0000 - 127) << 23);
    p * scale
}

/// erf(x) to about 1e-7 without `exp`: the odd/even rational approximation on [-4, 4] used by Eigen and XLA
/// (erf is ±1 in single precision beyond), branch-free.
#[inline(always)]
fn erf<const FMA: bool>(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10;
    p = madd::<FMA>(x2, p, 2.770_681_4e-8);
    p = madd::<FMA>(x2, p, -2.101_024e-6);
    p = madd::<FMA>(x2, p, -5.692_506_4e-5);
    p = madd::<FMA>(x2, p, -7.349_906_3e-4);
    p = madd::<FMA>(x2, p, -2.954_6e-3);
    p = madd::<FMA>(x2, p, -1.609_603_3e-2);
    let mut q = -1.456_607_2e-5;
    q = madd::<FMA>(x2, q, -2.133_740_6e-4);
    q = madd::<FMA>(x2, q, -1.682_827e-3);
    q = madd::<FMA>(x2, q, -7.373_329e-3);
    q = madd::<FMA>(x2, q, -1.426_474e-2);
    (x * p / q).clamp(-1.0, 1.0)
}

multiversion! {
    /// GELU with the exact (erf) form BERT uses: `x · (1 + erf(x / √2)) / 2`, in place.
    pub fn gelu(xs: &mut [f32]) => gelu_impl
}

#[inline(always)]
fn gelu_impl<const FMA: bool>(xs: &mut [f32]) {
    for x in xs {
        *x = 0.5 * *x * (1.0 + erf::<FMA>(*x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

multiversion! {
    /// `x = LayerNorm(x + residual)` row by row (rows of `gamma.len()` values).
    pub fn add_layer_norm(x: &mut [f32], residual: &[f32], gamma: &[f32], beta: &[f32], eps: f32) => add_layer_norm_impl
}

#[inline(always)]
fn add_layer_norm_impl<const FMA: bool>(x: &mut [f32], residual: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let width = gamma.len();
    for (row, res) in x.chunks_exact_mut(width).zip(residual.chunks_exact(width)) {
        for (v, r) in row.iter_mut().zip(res) {
            *v += r;
        }
        normalize_row::<FMA>(row, gamma, beta, eps);
    }
}

multiversion! {
    /// `x = LayerNorm(x)` row by row (rows of `gamma.len()` values).
    pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) => layer_norm_impl
}

#[inline(always)]
fn layer_norm_impl<const FMA: bool>(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(gamma.len()) {
        normalize_row::<FMA>(row, gamma, beta, eps);
    }
}

#[inline(always)]
fn normalize_row<const FMA: bool>(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = sum8(row) / n;
    let mut var = [0f32; 8];
    let (chunks, rest) = row.as_chunks::<8>();
    for c in chunks {
        for j in 0..8 {
            let d = c[j] - mean;
            var[j] = madd::<FMA>(d, d, var[j]);
        }
    }
    let tail: f32 = rest.iter().map(|v| (v - mean) * (v - mean)).sum();
    let inv = 1.0 / ((var.iter().sum::<f32>() + tail) / n + eps).sqrt();
    for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = madd::<FMA>((*v - mean) * inv, *g, *b);
    }
}

/// A sum in eight lanes (vectorises; the order differs from a plain left-to-right sum).
#[inline(always)]
fn sum8(xs: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (chunks, rest) = xs.as_chunks::<8>();
    for c in chunks {
        for j in 0..8 {
            lanes[j] += c[j];
        }
    }
    lanes.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_erf_are_accurate() {
        for i in -2000..=2000 {
            let x = i as f32 / 50.0;
            let (e, want) = (exp::<false>(x), (x as f64).exp());
            assert!(((e as f64 - want) / want).abs() < 4e-7, "exp({x}) = {e}, want {want}");
            let e = exp::<true>(x);
            assert!(((e as f64 - want) / want).abs() < 4e-7, "fused exp({x}) = {e}, want {want}");
        }
        // erf at known points (Abramowitz and Stegun table 7.1), and everywhere against a series in f64.
        for (x, want) in [(0.0f32, 0.0f64), (0.5, 0.520_499_877_8), (1.0, 0.842_700_792_9), (2.0, 0.995_322_265)] {
            assert!((erf::<false>(x) as f64 - want).abs() < 3e-7, "erf({x})");
            assert!((erf::<false>(-x) as f64 + want).abs() < 3e-7, "erf(-{x})");
        }
        for i in -600..=600 {
            let x = i as f64 / 100.0;
            let want = erf_f64(x);
            for got in [erf::<false>(x as f32), erf::<true>(x as f32)] {
                assert!((got as f64 - want).abs() < 3e-7, "erf({x}) = {got}, want {want}");
            }
        }
    }

    /// erf in f64: its Taylor series for |x| < 3, else 1 - erfc from the continued fraction (both converge
    /// far past f32 precision there).
    fn erf_f64(x: f64) -> f64 {
        if x.abs() < 3.0 {
            let (mut term, mut sum, mut n) = (x, x, 0.0);
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -x * x / n;
                sum += term / (2.0 * n + 1.0);
            }
            return sum * 2.0 / std::f64::consts::PI.sqrt();
        }
        let a = x.abs();
        let mut fraction = 0.0;
        for k in (1..60).rev() {
            fraction = (k as f64 / 2.0) / (a + fraction);
        }
        let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + fraction);
        (1.0 - erfc).copysign(x)
    }

    #[test]
    fn matmul_matches_a_plain_triple_loop() {
        // 1 to 20 rows (every mix of full and tail row blocks), 40 inputs, 48 outputs (three panels).
        for m in 1..=20 {
            matmul_case(m);
        }
    }

    fn matmul_case(m: usize) {
        let (k, n) = (40, 48);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 53 % 97) as f32 - 48.0) / 97.0).collect();
        let bias: Vec<f32> = (0..n).map(|i| i as f32 / 10.0).collect();
        let panels = pack_panels(&w, n, k);
        let mut packed = Vec::new();
        pack_rows(&a, m, k, k, &mut packed);
        let mut out = vec![0f32; m * n];
        matmul_panels(&packed, m, Window::panels(&panels, k, &bias, 0, n / PANEL), &mut out, n);
        for r in 0..m {
            for o in 0..n {
                let want: f32 = bias[o] + (0..k).map(|i| a[r * k + i] * w[o * k + i]).sum::<f32>();
                assert!((out[r * n + o] - want).abs() < 1e-4, "{m} rows, ({r}, {o}): {} vs {want}", out[r * n + o]);
            }
        }
        // A window: inputs 8..24 of the last two panels, no bias, into an output 40 wide.
        let a_window: Vec<f32> = (0..m).flat_map(|r| a[r * k + 8..r * k + 24].to_vec()).collect();
        pack_rows(&a_window, m, 16, 16, &mut packed);
        let window = Window { panels: &panels[k..], inputs: k, from: 8, to: 24, bias: &[] };
        let mut out = vec![0f32; m * 40];
        matmul_panels(&packed, m, window, &mut out, 40);
        for r in 0..m {
            for o in 0..32 {
                let want: f32 = (8..24).map(|i| a[r * k + i] * w[(16 + o) * k + i]).sum();
                assert!((out[r * 40 + o] - want).abs() < 1e-4, "window ({r}, {o}): {} vs {want}", out[r * 40 + o]);
            }
            assert!(out[r * 40 + 32..(r + 1) * 40].iter().all(|v| *v == 0.0), "nothing past the window's columns");
        }
    }

    #[test]
    fn row_blocks_cover_the_rows_in_order_with_at_most_one_padded_row_from_six() {
        for rows in 0..100 {
            let blocks: Vec<_> = row_blocks(rows).collect();
            let mut next = 0;
            for &(first, size) in &blocks {
                assert_eq!(first, next, "{rows} rows: {blocks:?}");
                assert!(size == ROWS || size == TAIL_ROWS, "{rows} rows: {blocks:?}");
                next += size;
            }
            assert!(next >= rows && next - rows <= if rows >= ROWS { 1 } else { 3 }, "{rows} rows: {blocks:?}");
        }
    }

    #[test]
    fn layer_norm_matches_its_definition() {
        let mut x = vec![1.0f32, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0, 10.0];
        layer_norm(&mut x, &[1.0; 4], &[0.5; 4], 1e-12);
        let sd = 1.25f32.sqrt();
        let want = [-1.5 / sd + 0.5, -0.5 / sd + 0.5, 0.5 / sd + 0.5, 1.5 / sd + 0.5];
        assert!(x[..4].iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{x:?}");
        assert!(x[4..].iter().all(|v| (v - 0.5).abs() < 1e-6), "a constant row normalises to beta");
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    #[test]
    #[ignore = "a measurement, not a test: cargo test --release -p switchyard-encoder kernel_speed -- --ignored --nocapture"]
    fn kernel_speed() {
        for (m, k, n, copies) in
            [(16, 384, 1152, 1), (16, 384, 1152, 24), (32, 384, 1152, 24), (16, 1536, 384, 24), (480, 384, 1152, 1)]
        {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
            let weights: Vec<Vec<Line>> =
                (0..copies).map(|c| pack_panels(&vec![0.01 * c as f32; n * k], n, k)).collect();
            let bias = vec![0f32; n];
            let mut packed = Vec::new();
            pack_rows(&a, m, k, k, &mut packed);
            let mut out = vec![0f32; m * n];
            let reps = (2e9 / (m * k * n * 2) as f64).max(3.0) as usize;
            let start = std::time::Instant::now();
            for r in 0..reps {
                matmul_panels(&packed, m, Window::panels(&weights[r % copies], k, &bias, 0, n / PANEL), &mut out, n);
            }
            let secs = start.elapsed().as_secs_f64() / reps as f64;
            println!(
                "m {m} k {k} n {n}, {copies} weight copies: {:.1} us, {:.1} GFLOP/s",
                secs * 1e6,
                (m * k * n * 2) as f64 / secs / 1e9
            );
        }
    }
}
