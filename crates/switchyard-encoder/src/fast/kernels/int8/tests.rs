use super::*;

/// Values in about [-1, 1] with a few larger ones, as layer-normed activations have.
fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let v = (((i + seed) * 37 % 101) as f32 - 50.0) / 50.0;
            if (i + seed).is_multiple_of(41) {
                v * 6.0
            } else {
                v
            }
        })
        .collect()
}

/// Checks an int8 result against the f32 one, `bias + row · col`: each product may be off by half a step of
/// either factor, `|a|·Δw/2 + |w|·Δa/2 + Δa·Δw/4`, with the steps of the largest magnitudes of the input's
/// block of 32 in the row and in the column.
fn check(got: f32, bias: f32, row: &[f32], col: &[f32]) {
    let want: f32 = bias + row.iter().zip(col).map(|(x, y)| x * y).sum::<f32>();
    let mut bound = 0.0;
    for (xs, ws) in row.chunks(BLOCK).zip(col.chunks(BLOCK)) {
        let da = xs.iter().fold(0f32, |m, v| m.max(v.abs())) / A_MAX;
        let dw = ws.iter().fold(0f32, |m, v| m.max(v.abs())) / W_MAX;
        bound += xs.iter().zip(ws).map(|(x, y)| x.abs() * dw / 2.0 + y.abs() * da / 2.0 + da * dw / 4.0).sum::<f32>();
    }
    assert!((got - want).abs() <= bound * 1.001 + 1e-5, "{got} vs {want}, bound {bound}");
}

#[test]
fn int8_matmul_is_within_its_quantisation_error_of_f32_on_every_build() {
    for m in [1, 2, 5, 6, 7, 13, 20] {
        let (k, n) = (64, 48);
        let a = values(m * k, 3);
        let w: Vec<f32> = values(n * k, 17).iter().map(|v| v * 0.1).collect();
        let bias: Vec<f32> = (0..n).map(|i| i as f32 / 10.0).collect();
        let q = QWeights::quantize(&w, n, k).unwrap();
        let mut rows = QRows::take();
        rows.pack(&a, m, k, k);
        let mut outs = Vec::new();
        for isa in [Isa::Scalar, Isa::Avx2, Isa::Vnni] {
            let mut out = vec![0f32; m * n];
            matmul(
                &rows,
                isa,
                QWindow { weights: &q, first: 0, count: n / PANEL, from: 0, to: k, bias: &bias },
                &mut out,
                n,
            );
            outs.push(out);
        }
        assert!(outs.iter().all(|o| o == &outs[0]), "{m} rows: the builds differ");
        let out = &outs[0];
        for r in 0..m {
            let row = &a[r * k..(r + 1) * k];
            for o in 0..n {
                check(out[r * n + o], bias[o], row, &w[o * k..(o + 1) * k]);
            }
        }
        rows.recycle();
    }
}

#[test]
fn a_window_of_inputs_and_panels_matches_the_whole() {
    let (m, k, n) = (9, 128, 48);
    let a = values(m * k, 5);
    let w = values(n * k, 23);
    let q = QWeights::quantize(&w, n, k).unwrap();
    // Inputs 32..96 of panels 1 and 2, no bias, into an output 40 wide: the sums over those inputs only.
    let part: Vec<f32> = (0..m).flat_map(|r| a[r * k + 32..r * k + 96].to_vec()).collect();
    let mut rows = QRows::take();
    rows.pack(&part, m, 64, 64);
    let mut out = vec![0f32; m * 40];
    matmul(&rows, detect(), QWindow { weights: &q, first: 1, count: 2, from: 32, to: 96, bias: &[] }, &mut out, 40);
    // The same inputs packed as part of whole rows give the same quantised values (blocks of 32 align).
    let mut whole = QRows::take();
    whole.pack(&a, m, k, k);
    let blocks = k / BLOCK;
    for r in 0..m {
        let (first, size) = row_blocks(m).find(|&(f, s)| r >= f && r < f + s).unwrap();
        for b in 0..2 {
            let (part_blocks, at) = (2, r - first);
            assert_eq!(
                rows.scales[first * part_blocks + b * size + at],
                whole.scales[first * blocks + (b + 1) * size + at]
            );
        }
    }
    for r in 0..m {
        let row = &part[r * 64..(r + 1) * 64];
        for o in 0..32 {
            let col = &w[(16 + o) * k..(17 + o) * k];
            check(out[r * 40 + o], 0.0, row, &col[32..96]);
        }
        assert!(out[r * 40 + 32..(r + 1) * 40].iter().all(|v| *v == 0.0), "nothing past the window");
    }
}

#[test]
fn quantisation_rounds_to_even_and_keeps_zero_rows_zero() {
    assert_eq!([0.5, 1.5, 2.5, -0.5, -1.5, 126.6, -127.0].map(round), [0, 2, 2, 0, -2, 127, -127]);
    let (mut q, mut scales, mut offsets) = (vec![0i8; 64], vec![9.0; 2], vec![9; 2]);
    quantize_row(&[0.0; 64], &mut q, &mut scales, &mut offsets);
    assert_eq!((scales.as_slice(), offsets.as_slice()), (&[0.0, 0.0][..], &[0, 0][..]));
    let mut row = [0f32; 64];
    row[..4].copy_from_slice(&[2.0, -1.0, 0.0, 1.0]);
    row[32] = -0.5;
    quantize_row(&row, &mut q, &mut scales, &mut offsets);
    // Block 0: 2 → 127, ±1 → ±63.5 → ±64 (ties to even); block 1: its own scale.
    assert_eq!((&q[..4], q[32]), (&[127i8, -64, 0, 64][..], -127));
    assert_eq!(scales, [2.0 / 127.0, 0.5 / 127.0]);
    assert_eq!(offsets, [W_OFFSET * (127 - 64 + 64), W_OFFSET * -127]);
    assert!(QWeights::quantize(&[0.0; 10], 16, 1).is_err(), "sizes are checked");
    let w = QWeights::quantize(&vec![0.0; 16 * 32], 16, 32).unwrap();
    assert!(w.scales.iter().flatten().all(|&s| s == 0.0) && w.lines[0].0.iter().all(|&b| b == W_OFFSET as u8));
}

#[test]
fn slices_of_the_inputs_add_up_to_the_whole_as_a_pass_split_by_heads_does() {
    // Blocks of 32 align with every slice, so each slice is quantised as within the whole row: only the
    // order of the float additions differs.
    for (m, k, n, split) in [(3, 128, 32, 64), (9, 384, 384, 192), (9, 1536, 384, 768)] {
        let (a, w) = (values(m * k, 5), values(n * k, 23));
        let q = QWeights::quantize(&w, n, k).unwrap();
        let mut whole = QRows::take();
        whole.pack(&a, m, k, k);
        let mut out = vec![0f32; m * n];
        matmul(
            &whole,
            detect(),
            QWindow { weights: &q, first: 0, count: n / 16, from: 0, to: k, bias: &[] },
            &mut out,
            n,
        );
        let (mut sum, mut magnitude) = (vec![0f32; m * n], vec![0f32; m * n]);
        for (from, to) in [(0, split), (split, k)] {
            let part: Vec<f32> = (0..m).flat_map(|r| a[r * k + from..r * k + to].to_vec()).collect();
            let mut rows = QRows::take();
            rows.pack(&part, m, to - from, to - from);
            let mut o = vec![0f32; m * n];
            matmul(&rows, detect(), QWindow { weights: &q, first: 0, count: n / 16, from, to, bias: &[] }, &mut o, n);
            sum.iter_mut().zip(&o).for_each(|(s, o)| *s += o);
            magnitude.iter_mut().zip(&o).for_each(|(s, o)| *s += o.abs());
        }
        for ((x, y), size) in out.iter().zip(&sum).zip(&magnitude) {
            let bound = 1e-5 * size.max(1.0);
            assert!((x - y).abs() <= bound, "{m} x {k} x {n}, split at {split}: {x} vs {y}");
        }
    }
}

#[test]
#[ignore = "a measurement, not a test: cargo test --release -p switchyard-encoder int8_kernel_speed -- --ignored --nocapture"]
fn int8_kernel_speed() {
    for (m, k, n) in [(16, 384, 1152), (128, 384, 1536), (128, 1536, 384), (128, 384, 1152)] {
        let a = values(m * k, 3);
        let w = values(n * k, 17);
        let q = QWeights::quantize(&w, n, k).unwrap();
        let bias = vec![0f32; n];
        let mut rows = QRows::take();
        rows.pack(&a, m, k, k);
        let mut out = vec![0f32; m * n];
        let window = QWindow { weights: &q, first: 0, count: n / PANEL, from: 0, to: k, bias: &bias };
        let reps = (4e9 / (m * k * n) as f64).max(3.0) as usize;
        let start = std::time::Instant::now();
        for _ in 0..reps {
            matmul(&rows, detect(), window, &mut out, n);
        }
        let secs = start.elapsed().as_secs_f64() / reps as f64;
        let start = std::time::Instant::now();
        for _ in 0..reps {
            rows.pack(&a, m, k, k);
        }
        let pack = start.elapsed().as_secs_f64() / reps as f64;
        println!(
            "m {m} k {k} n {n}: matmul {:.1} us, {:.1} GMAC/s; packing the rows {:.1} us",
            secs * 1e6,
            (m * k * n) as f64 / secs / 1e9,
            pack * 1e6
        );
    }
}
