//! Element-wise pieces of the BERT forward pass: LayerNorm and GELU (exact, via erf).

/// LayerNorm as ggml's `norm` computes it (mean and variance summed in f64), then
/// `* weight + bias`.
pub fn layer_norm(x: &[f32], weight: &[f32], bias: &[f32], eps: f32, out: &mut [f32]) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x
        .iter()
        .map(|&v| (v as f64 - mean) * (v as f64 - mean))
        .sum::<f64>()
        / n;
    let scale = 1.0 / (var + eps as f64).sqrt();
    for (((o, &v), &w), &b) in out.iter_mut().zip(x).zip(weight).zip(bias) {
        *o = ((v as f64 - mean) * scale) as f32 * w + b;
    }
}

/// LayerNorm in place.
pub fn layer_norm_inplace(x: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x
        .iter()
        .map(|&v| (v as f64 - mean) * (v as f64 - mean))
        .sum::<f64>()
        / n;
    let scale = 1.0 / (var + eps as f64).sqrt();
    for ((v, &w), &b) in x.iter_mut().zip(weight).zip(bias) {
        *v = ((*v as f64 - mean) * scale) as f32 * w + b;
    }
}

/// The exact GELU of Hugging Face's `"gelu"`: `x/2 * (1 + erf(x/√2))`.
#[inline]
pub fn gelu_erf(x: f32) -> f32 {
    let x = x as f64;
    (0.5 * x * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
}

/// The tanh approximation (`"gelu_new"`, `"gelu_pytorch_tanh"`).
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    let x = x as f64;
    const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
    (0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).tanh())) as f32
}

/// The error function, to about 1e-15 absolute (Rust's `f64::erf` is not stable yet).
///
/// |x| < 3: the everywhere-convergent series `erf(x) = 2/√π e^{-x²} Σ 2ⁿx^{2n+1}/(2n+1)!!`
/// (all terms positive, no cancellation); 3 ≤ |x| < 6.5: `1 - erfc(x)` with erfc from
/// its continued fraction; beyond, ±1 (erfc(6.5) < 1e-19).
pub fn erf(x: f64) -> f64 {
    const FRAC_2_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 3.0 {
        let x2 = a * a;
        let mut term = a;
        let mut sum = a;
        let mut n = 0.0;
        loop {
            n += 1.0;
            term *= 2.0 * x2 / (2.0 * n + 1.0);
            sum += term;
            if term <= sum * 1e-17 {
                break;
            }
        }
        FRAC_2_SQRT_PI * (-x2).exp() * sum
    } else if a < 6.5 {
        // erfc(a) = e^{-a²}/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + ...)))), evaluated backwards.
        let mut f = a;
        for k in (1..=80).rev() {
            f = a + (k as f64 * 0.5) / f;
        }
        1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * f)
    } else {
        1.0
    };
    if x < 0.0 {
        -r
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_reference_values() {
        // Values from Python's math.erf.
        let cases = [
            (0.0, 0.0),
            (1e-8, 1.1283791670955126e-08),
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (1.5, 0.9661051464753108),
            (2.0, 0.9953222650189527),
            (2.9, 0.9999589021219005),
            (3.0, 0.9999779095030014),
            (3.5, 0.9999992569016276),
            (4.0, 0.9999999845827421),
            (5.0, 0.9999999999984626),
            (7.0, 1.0),
        ];
        for (x, want) in cases {
            let got = erf(x);
            assert!((got - want).abs() < 1e-14, "erf({x}) = {got}, want {want}");
            assert!((erf(-x) + want).abs() < 1e-14);
        }
    }

    #[test]
    fn layer_norm_normalises() {
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let mut out = [0.0f32; 4];
        layer_norm(&x, &[1.0; 4], &[0.5; 4], 0.0, &mut out);
        let mean: f32 = out.iter().sum::<f32>() / 4.0;
        assert!((mean - 0.5).abs() < 1e-6);
        let mut y = x;
        layer_norm_inplace(&mut y, &[1.0; 4], &[0.5; 4], 0.0);
        assert_eq!(y, out);
    }
}
