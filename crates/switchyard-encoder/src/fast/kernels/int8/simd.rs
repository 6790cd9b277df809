//! The int8 dot-product kernels, in three builds that return the same bits: AVX-512 VNNI (`vpdpbusd` on
//! 512-bit registers, two panels at a time), AVX2 (bytes widened to 16 bits, `vpmaddwd`), and plain Rust.
//! Which runs is checked against the CPU on every call. The `unsafe` here is the calls into `#[target_feature]` functions after
//! that check, and aligned loads from [`QLine`]s.
//!
//! Exactness: within a block of 32 inputs every build sums the same products in 32-bit integers (at most
//! 32 · 255 · 127, so the sum converts to f32 exactly), takes off the weights' offset (the VNNI build starts
//! its sums at minus it: the same integer), then adds the block,
//! times the product of its row and column scales, with one fused multiply-add, blocks in order.

use super::QLine;
use crate::fast::kernels::PANEL;

/// Which build of the kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512 VNNI on 512-bit registers.
    Vnni,
    /// AVX2.
    Avx2,
    /// Plain Rust, any CPU.
    Scalar,
}

/// The fastest build this CPU runs.
pub fn detect() -> Isa {
    if has(Isa::Vnni) {
        Isa::Vnni
    } else if has(Isa::Avx2) {
        Isa::Avx2
    } else {
        Isa::Scalar
    }
}

/// Whether this CPU runs `isa` (`std` caches the answer).
pub fn has(isa: Isa) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = std::is_x86_feature_detected!("avx2");
        match isa {
            Isa::Vnni => {
                avx2 && std::is_x86_feature_detected!("fma")
                    && std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx512vnni")
            }
            Isa::Avx2 => avx2 && std::is_x86_feature_detected!("fma"),
            Isa::Scalar => true,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        isa == Isa::Scalar
    }
}

/// Groups of 4 inputs per block: one scale per row and one per column cover 8 groups (32 inputs).
pub const GROUPS_PER_BLOCK: usize = 8;

/// Per block of inputs, per row: the activations' scales and the offsets the stored weights add.
#[derive(Debug, Clone, Copy)]
pub struct RowBlocks<'a, const R: usize> {
    /// Per block, each row's activation scale.
    pub scales: &'a [[f32; R]],
    /// Per block, each row's `128 · Σ q`: what storing weights as `q + 128` adds to its sums.
    pub offsets: &'a [[i32; R]],
}

impl<'a, const R: usize> RowBlocks<'a, R> {
    /// The first `blocks` blocks.
    fn first(self, blocks: usize) -> Self {
        Self { scales: &self.scales[..blocks], offsets: &self.offsets[..blocks] }
    }

    /// Each block's (scales, offsets).
    fn iter(self) -> impl Iterator<Item = (&'a [f32; R], &'a [i32; R])> {
        self.scales.iter().zip(self.offsets)
    }
}

/// `out[p][r][j] = Σ_b (S_b[r][j] − offsets_b[r]) · (row_scales_b[r] · col_scales[p]_b[j])`, where
/// `S_b[r][j] = Σ_{g in block b} Σ_i lines[p][g].0[4j + i] · (acts[g][r].to_le_bytes()[i] as i8)`, for `R`
/// rows and `P` panels of 16 columns: each block summed exactly in integers, then added in f32 with one fused
/// multiply-add, blocks in order. Runs the build `isa` if this CPU has it, else the plain one; every build
/// returns the same bits. The VNNI build runs the `P` panels together (two keep twelve sums in flight); the
/// others one after the other.
#[inline]
pub fn dot_block<const R: usize, const P: usize>(
    isa: Isa,
    acts: &[[i32; R]],
    rows: RowBlocks<'_, R>,
    lines: [&[QLine]; P],
    col_scales: [&[[f32; PANEL]]; P],
) -> [[[f32; PANEL]; R]; P] {
    let mut blocks = rows.scales.len().min(rows.offsets.len()).min(acts.len() / GROUPS_PER_BLOCK);
    for p in 0..P {
        blocks = blocks.min(col_scales[p].len()).min(lines[p].len() / GROUPS_PER_BLOCK);
    }
    let groups = blocks * GROUPS_PER_BLOCK;
    let (acts, rows) = (&acts[..groups], rows.first(blocks));
    let (lines, cols) = (lines.map(|l| &l[..groups]), col_scales.map(|c| &c[..blocks]));
    #[cfg(target_arch = "x86_64")]
    {
        if isa == Isa::Vnni && has(Isa::Vnni) {
            // SAFETY: `vnni` is compiled for AVX2, FMA and AVX-512 F, VL and VNNI (VL kept from the 256-bit build,
            // which every VNNI CPU has); the CPU was just checked to have them all.
            return unsafe { vnni::<R, P>(acts, rows, lines, cols) };
        }
        if isa != Isa::Scalar && has(Isa::Avx2) {
            // SAFETY: `avx2` needs AVX2 and FMA; the CPU was just checked to have them.
            return std::array::from_fn(|p| unsafe { avx2::<R>(acts, rows, lines[p], cols[p]) });
        }
    }
    let _ = isa;
    std::array::from_fn(|p| scalar::<R>(acts, rows, lines[p], cols[p]))
}

/// The plain build, and the definition the others are tested against.
pub fn scalar<const R: usize>(
    acts: &[[i32; R]],
    rows: RowBlocks<'_, R>,
    lines: &[QLine],
    col_scales: &[[f32; PANEL]],
) -> [[f32; PANEL]; R] {
    let mut out = [[0f32; PANEL]; R];
    let blocks =
        acts.chunks_exact(GROUPS_PER_BLOCK).zip(lines.chunks_exact(GROUPS_PER_BLOCK)).zip(rows.iter().zip(col_scales));
    for ((acts, lines), ((row_scales, row_offsets), cols)) in blocks {
        let mut sums = [[0i32; PANEL]; R];
        for (a, QLine(w)) in acts.iter().zip(lines) {
            for r in 0..R {
                let x = a[r].to_le_bytes().map(|b| i32::from(b as i8));
                for j in 0..PANEL {
                    let w = &w[4 * j..4 * j + 4];
                    sums[r][j] += (0..4).map(|i| i32::from(w[i]) * x[i]).sum::<i32>();
                }
            }
        }
        for r in 0..R {
            for j in 0..PANEL {
                // The SIMD builds' multiply, then fused multiply-add, to the bit.
                let scale = row_scales[r] * cols[j];
                out[r][j] = ((sums[r][j] - row_offsets[r]) as f32).mul_add(scale, out[r][j]);
            }
        }
    }
    out
}

/// AVX-512 VNNI on 512-bit registers: a [`QLine`] is one register, 16 columns by 4 inputs, and one
/// `vpdpbusd` per row and panel adds all of its products. Each block's integer sums start at minus the row's
/// offset, so the offset costs no instruction (the same integer as subtracting it after).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
fn vnni<const R: usize, const P: usize>(
    acts: &[[i32; R]],
    rows: RowBlocks<'_, R>,
    lines: [&[QLine]; P],
    col_scales: [&[[f32; PANEL]]; P],
) -> [[[f32; PANEL]; R]; P] {
    use std::arch::x86_64::*;
    let mut f = [[_mm512_setzero_ps(); R]; P];
    for (b, (row_scales, row_offsets)) in rows.iter().enumerate() {
        let start = b * GROUPS_PER_BLOCK;
        let mut sums = [row_offsets.map(|o| _mm512_set1_epi32(o.wrapping_neg())); P];
        for g in start..start + GROUPS_PER_BLOCK {
            let a = &acts[g];
            // SAFETY: a `QLine` is 64 bytes aligned to 64: one aligned 64-byte load covers exactly it.
            let w = lines.map(|l| unsafe { _mm512_load_si512(l[g].0.as_ptr().cast()) });
            for r in 0..R {
                let x = _mm512_set1_epi32(a[r]);
                for p in 0..P {
                    sums[p][r] = _mm512_dpbusd_epi32(sums[p][r], w[p], x);
                }
            }
        }
        for p in 0..P {
            // SAFETY: a block's column scales are 16 f32s; the unaligned 64-byte load covers exactly them.
            let c = unsafe { _mm512_loadu_ps(col_scales[p][b].as_ptr()) };
            for r in 0..R {
                let scale = _mm512_mul_ps(_mm512_set1_ps(row_scales[r]), c);
                f[p][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[p][r]), scale, f[p][r]);
            }
        }
    }
    let mut out = [[[0f32; PANEL]; R]; P];
    for p in 0..P {
        for r in 0..R {
            // SAFETY: `out[p][r]` holds 16 f32s; the unaligned 64-byte store covers exactly them.
            unsafe { _mm512_storeu_ps(out[p][r].as_mut_ptr(), f[p][r]) };
        }
    }
    out
}

/// AVX2 without VNNI: bytes widened to 16 bits and multiplied with `vpmaddwd` (exact for unsigned 8-bit
/// weights, where `vpmaddubsw`'s 16-bit pair sums would saturate), 8 columns at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn avx2<const R: usize>(
    acts: &[[i32; R]],
    rows: RowBlocks<'_, R>,
    lines: &[QLine],
    col_scales: &[[f32; PANEL]],
) -> [[f32; PANEL]; R] {
    use std::arch::x86_64::*;
    let mut out = [[0f32; PANEL]; R];
    for half in 0..2 {
        let mut f = [_mm256_setzero_ps(); R];
        let blocks = acts
            .chunks_exact(GROUPS_PER_BLOCK)
            .zip(lines.chunks_exact(GROUPS_PER_BLOCK))
            .zip(rows.iter().zip(col_scales));
        for ((acts, lines), ((row_scales, row_offsets), cols)) in blocks {
            // Per row, pair sums of columns 0-3 and 4-7 of this half (two i32 per column).
            let mut lo = [_mm256_setzero_si256(); R];
            let mut hi = [_mm256_setzero_si256(); R];
            for (a, line) in acts.iter().zip(lines) {
                // SAFETY: a `QLine` is 64 bytes aligned to 64: both 16-byte quarters of this half are in
                // bounds and aligned.
                let (w0, w1) = unsafe {
                    let p = line.0.as_ptr().add(32 * half);
                    (_mm_load_si128(p.cast()), _mm_load_si128(p.add(16).cast()))
                };
                let (w0, w1) = (_mm256_cvtepu8_epi16(w0), _mm256_cvtepu8_epi16(w1));
                for r in 0..R {
                    let x = _mm256_cvtepi8_epi16(_mm_set1_epi32(a[r]));
                    lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(w0, x));
                    hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(w1, x));
                }
            }
            // SAFETY: `cols[8 * half ..]` holds 8 f32s, which the unaligned 32-byte load covers.
            let c = unsafe { _mm256_loadu_ps(cols.as_ptr().add(8 * half)) };
            for r in 0..R {
                // Pairs added: lanes (c0, c1, c4, c5 | c2, c3, c6, c7), then put in column order.
                let sums = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(lo[r], hi[r]));
                let sums = _mm256_cvtepi32_ps(_mm256_sub_epi32(sums, _mm256_set1_epi32(row_offsets[r])));
                f[r] = _mm256_fmadd_ps(sums, _mm256_mul_ps(_mm256_set1_ps(row_scales[r]), c), f[r]);
            }
        }
        for r in 0..R {
            // SAFETY: `out[r][8 * half ..]` holds at least 8 f32s, which the unaligned 32-byte store covers.
            unsafe { _mm256_storeu_ps(out[r].as_mut_ptr().add(8 * half), f[r]) };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block's row values, owned.
    struct Rows<const R: usize> {
        scales: Vec<[f32; R]>,
        offsets: Vec<[i32; R]>,
    }

    impl<const R: usize> Rows<R> {
        fn blocks(&self) -> RowBlocks<'_, R> {
            RowBlocks { scales: &self.scales, offsets: &self.offsets }
        }
    }

    type Case<const R: usize> = (Vec<[i32; R]>, Rows<R>, Vec<QLine>, Vec<[f32; PANEL]>);

    /// Deterministic bytes covering the extremes (weight bytes 0 to 255, activations -127 to 127), offsets,
    /// and scales of very different sizes.
    fn case<const R: usize>(blocks: usize, seed: u32) -> Case<R> {
        let mut s = seed;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        let groups = blocks * GROUPS_PER_BLOCK;
        let lines = (0..groups)
            .map(|_| {
                let mut line = QLine([0; 64]);
                line.0.iter_mut().for_each(|b| *b = (next() % 256) as u8);
                line
            })
            .collect();
        let act = |v: u32| ((v % 255) as i32 - 127) as i8 as u8;
        let acts = (0..groups)
            .map(|_| std::array::from_fn(|_| i32::from_le_bytes([act(next()), act(next()), act(next()), act(next())])))
            .collect();
        let mut scale = || (next() % 1000) as f32 * 1e-5 + 1e-7;
        let scales = (0..blocks).map(|_| std::array::from_fn(|_| scale())).collect();
        let cols = (0..blocks).map(|_| std::array::from_fn(|_| scale())).collect();
        let offsets = (0..blocks).map(|_| std::array::from_fn(|_| 128 * ((next() % 8000) as i32 - 4000))).collect();
        (acts, Rows { scales, offsets }, lines, cols)
    }

    fn same_bits<const R: usize>(a: &[[f32; PANEL]; R], b: &[[f32; PANEL]; R]) -> bool {
        a.iter().flatten().zip(b.iter().flatten()).all(|(a, b)| a.to_bits() == b.to_bits())
    }

    /// Every build this CPU runs against the plain one, to the bit, on `R` rows: one panel, and two distinct
    /// panels side by side. `saturate` sets the first line's weight bytes to 255.
    fn check_builds<const R: usize>(blocks: usize, seed: u32, saturate: bool) {
        let (acts, rows, mut lines, cols) = case::<R>(blocks, seed);
        if saturate {
            lines[0].0.iter_mut().for_each(|b| *b = 255);
        }
        let (_, _, other, other_cols) = case::<R>(blocks, seed + 2);
        let want = scalar::<R>(&acts, rows.blocks(), &lines, &cols);
        let want_other = scalar::<R>(&acts, rows.blocks(), &other, &other_cols);
        for isa in [Isa::Vnni, Isa::Avx2] {
            if has(isa) {
                let [got] = dot_block::<R, 1>(isa, &acts, rows.blocks(), [&lines], [&cols]);
                assert!(same_bits(&got, &want), "{isa:?}, {blocks} blocks, {R} rows");
                let [a, b] = dot_block::<R, 2>(isa, &acts, rows.blocks(), [&lines, &other], [&cols, &other_cols]);
                assert!(same_bits(&a, &want) && same_bits(&b, &want_other), "{isa:?}, two panels, {R} rows");
            }
        }
    }

    #[test]
    fn every_build_this_cpu_runs_matches_the_plain_one_to_the_bit() {
        for (blocks, seed) in [(1, 7), (12, 11), (48, 13)] {
            // The extremes, where `vpmaddubsw`'s 16-bit pair sums would saturate.
            check_builds::<6>(blocks, seed, true);
            check_builds::<4>(blocks, seed + 1, false);
        }
        // The machines that build and test switchyard have AVX2: say so if this one does not, rather than
        // passing without comparing anything.
        #[cfg(target_arch = "x86_64")]
        assert!(has(Isa::Avx2), "this x86-64 CPU has no AVX2 and FMA: only the plain int8 kernel was checked");
    }

    #[test]
    fn the_plain_build_is_the_scaled_signed_dot_product() {
        let mut lines = vec![QLine([0; 64]); 2 * GROUPS_PER_BLOCK];
        lines[0].0[..4].copy_from_slice(&[1, 2, 3, 255]);
        lines[0].0[4..8].copy_from_slice(&[5, 0, 0, 0]);
        lines[GROUPS_PER_BLOCK].0[..4].copy_from_slice(&[7, 0, 0, 0]);
        let mut acts = vec![[0i32]; 2 * GROUPS_PER_BLOCK];
        acts[0] = [i32::from_le_bytes([1, 255, 2, 0x81])];
        acts[GROUPS_PER_BLOCK] = [i32::from_le_bytes([3, 0, 0, 0])];
        let rows = Rows { scales: vec![[0.5], [2.0]], offsets: vec![[10], [0]] };
        let mut cols = vec![[1.0; PANEL]; 2];
        cols[1][0] = 0.25;
        let out = scalar::<1>(&acts, rows.blocks(), &lines, &cols);
        // Block 0: (1·1 + 2·(-1) + 3·2 + 255·(-127) − 10) · 0.5; block 1: (7·3 − 0) · 2 · 0.25.
        assert_eq!(out[0][0], (1 - 2 + 6 - 255 * 127 - 10) as f32 * 0.5 + 10.5);
        // Column 1: (5·1 − 10) · 0.5, then (0 − 0) · 2.
        assert_eq!(out[0][1], -2.5);
        assert!(out[0][2..].iter().all(|&v| v == -5.0), "the offset alone: (0 − 10) · 0.5");
    }
}
