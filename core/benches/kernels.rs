//! Dot-kernel micro-benchmark: one matrix-vector product (`ROWS x COLS` weights, one
//! quantized activation row) per format, timed for the scalar reference kernels
//! (`vec_dot_reference`), the dispatched ones (`vec_dot`, one call per row) and the
//! multi-row entry point (`vec_dot_rows`, one call per matrix). Reports weight bytes
//! read per second and multiply-accumulates per second, and first the machine's
//! memory bandwidth as this build sees it (sequential read, memcpy) to compare with,
//! and in the relaxed-SIMD build the ceiling of its integer dot instruction.
//! The last two columns are prefill: 4 activation rows against each 128 KiB chunk of
//! weight rows (as `ops::matmul` does), one `vec_dot_rows` per token vs one
//! `vec_dot_tokens` (tiles of 4 tokens), in multiply-accumulates per second.
//!
//! ```text
//! cargo bench -p wasm-chord-core --bench kernels                     # native
//! cargo build -p chord --bin wasm-test-runner                         # once, for wasm
//! RUSTFLAGS="-C target-feature=+simd128" \
//!   cargo bench -p wasm-chord-core --bench kernels --target wasm32-wasip2
//! RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
//!   cargo bench -p wasm-chord-core --bench kernels --target wasm32-wasip2
//! ```
//!
//! Options (after `--`): `--rows N` `--cols N` (default 4096 x 4096; `cols` is rounded
//! to whole blocks), `--secs S` per measurement (default 0.3), `--no-ref` (skip the
//! scalar reference), `--tsv` (tab-separated output), and format names (`q4_K f16 ...`,
//! default all).

use std::hint::black_box;
use std::time::{Duration, Instant};

use chord_core::quant::simd128::{vec_dot_reference, vec_dot_rows, vec_dot_tokens, KERNELS};
use chord_core::quant::{
    quantize_activations, quantize_row, row_bytes, vec_dot, vec_dot_type, GgmlType,
};

struct Opts {
    rows: usize,
    cols: usize,
    secs: f64,
    reference: bool,
    tsv: bool,
    types: Vec<GgmlType>,
}

fn opts() -> Opts {
    let mut o = Opts {
        rows: 4096,
        cols: 4096,
        secs: 0.3,
        reference: true,
        tsv: false,
        types: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> f64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} needs a number"))
        };
        match a.as_str() {
            "--bench" => {}
            "--rows" => o.rows = num("--rows") as usize,
            "--cols" => o.cols = num("--cols") as usize,
            "--secs" => o.secs = num("--secs"),
            "--no-ref" => o.reference = false,
            "--tsv" => o.tsv = true,
            name => match GgmlType::from_name(name) {
                Some(t) => o.types.push(t),
                None => panic!("unknown argument or format {name:?}"),
            },
        }
    }
    if o.types.is_empty() {
        // The formats of the real models first, then the rest.
        o.types = vec![
            GgmlType::Q4_1,
            GgmlType::Q8_0,
            GgmlType::Q4K,
            GgmlType::Q6K,
            GgmlType::Q5_0,
            GgmlType::F16,
            GgmlType::F32,
            GgmlType::Q4_0,
            GgmlType::Q5_1,
            GgmlType::Q2K,
            GgmlType::Q3K,
            GgmlType::Q5K,
            GgmlType::BF16,
            GgmlType::Q8_1,
            GgmlType::Q8K,
        ];
    }
    o
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Bytes per weight copy in the component's matmul (`WasmWeights::chunk_bytes` of the
/// weights memory).
const COPY_CHUNK: usize = 16 * 1024;
/// Bytes of weight rows per `ops::matmul` call of the kernels on weights read in place
/// (the prefill columns).
const CHUNK: usize = chord_core::weights::DEFAULT_CHUNK_BYTES;

/// Best time of one pass of `f`, repeated for at least `secs` (after one warm-up).
fn time(secs: f64, mut f: impl FnMut()) -> Duration {
    f();
    let mut best = Duration::MAX;
    let start = Instant::now();
    let mut passes = 0;
    while passes < 3 || start.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
        passes += 1;
    }
    best
}

/// Sum of the words of `src`, four independent accumulators (so that the loads, not
/// the additions' latency, bound it; LLVM turns them into 128-bit loads in wasm).
fn read_all(src: &[u64]) -> u64 {
    let mut acc = [0u64; 4];
    let chunks = src.chunks_exact(4);
    let tail = chunks
        .remainder()
        .iter()
        .fold(0u64, |a, &x| a.wrapping_add(x));
    for c in chunks {
        for k in 0..4 {
            acc[k] = acc[k].wrapping_add(c[k]);
        }
    }
    acc.iter().fold(tail, |a, &x| a.wrapping_add(x))
}

/// Memory bandwidth of this machine as this build sees it: a sequential read (sum of
/// `u64` words, vectorised by the compiler) and a `memcpy`, over buffers far larger
/// than the caches. The dot kernels' GB/s compare against the read figure.
fn bandwidth(secs: f64) -> (f64, f64) {
    const BYTES: usize = 256 << 20;
    let src: Vec<u64> = (0..BYTES / 8).map(|i| i as u64).collect();
    let mut dst = vec![0u64; BYTES / 8];
    let t_read = time(secs, || {
        black_box(read_all(black_box(&src)));
    });
    let t_copy = time(secs, || {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
    });
    let gbs = |t: Duration| BYTES as f64 / t.as_secs_f64() / 1e9;
    // A copy reads and writes every byte.
    (gbs(t_read), 2.0 * gbs(t_copy))
}

/// Ceiling of the integer dot products the quantized kernels are built from: the
/// relaxed `i8x16 . i7x16 -> i32x4` dot-add, 8 independent accumulators, the signed
/// operand loaded from an L1-resident array as the kernels load activations (no
/// unpacking, no scales), in multiply-accumulates per second. Every dot has operands of
/// its own: Cranelift lowers the instruction to `pmaddubsw`, `pmaddwd`, `paddd` (no
/// VNNI) and would otherwise share the first two between dots with equal operands, or
/// hoist them out of the loop (an earlier version of this measured the additions).
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
fn dot_peak(secs: f64) -> f64 {
    use core::arch::wasm32::*;
    const N: usize = 1 << 13;
    const OPS: usize = 64;
    let ops: [v128; OPS] = core::array::from_fn(|i| i8x16_splat(i as i8 - 32));
    let b = black_box(i8x16_splat(5));
    let t = time(secs, || {
        let mut acc = [i32x4_splat(0); 8];
        for _ in 0..N {
            // Read through a pointer the compilers cannot see through (a volatile
            // read), so that no dot is loop-invariant.
            // SAFETY: reads a local.
            let ops: &[v128; OPS] = unsafe { core::ptr::read_volatile(&&ops) };
            // Unrolled (constant trip counts): the loop's back edge, where Wasmtime's
            // epoch check spills the accumulators, once per 64 dots.
            for j in 0..OPS / 8 {
                for (k, acc) in acc.iter_mut().enumerate() {
                    *acc = i32x4_relaxed_dot_i8x16_i7x16_add(ops[8 * j + k], b, *acc);
                }
            }
        }
        black_box(acc);
    });
    (N * OPS * 16) as f64 / t.as_secs_f64() / 1e9
}

fn main() {
    let o = opts();
    let target = if cfg!(target_arch = "wasm32") {
        "wasm32"
    } else {
        std::env::consts::ARCH
    };
    println!(
        "# dot kernels: {} x {} matvec, {target}, vec_dot kernels: {KERNELS}, best of >= {} s",
        o.rows, o.cols, o.secs
    );
    let (read, copy) = bandwidth(o.secs);
    println!("# memory bandwidth (256 MiB buffers): read {read:.1} GB/s, memcpy {copy:.1} GB/s (read + write)");
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    println!(
        "# relaxed dot ceiling: {:.1} GMAC/s (i32x4.relaxed_dot_i8x16_i7x16_add, 8 accumulators, operands from L1)",
        dot_peak(o.secs)
    );
    if o.tsv {
        println!("format\tweight_MiB\tref_GBs\tref_GMACs\tvec_dot_GBs\tvec_dot_GMACs\trows_GBs\trows_GMACs\tcopied_GBs\tx4_rows_GMACs\tx4_tokens_GMACs");
    } else {
        println!(
            "| format | weights MiB | reference GB/s | GMAC/s | vec_dot GB/s | GMAC/s | vec_dot_rows GB/s | GMAC/s | rows after 16 KiB copies GB/s | speedup | 4 tokens: rows x4 GMAC/s | vec_dot_tokens GMAC/s |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for &ty in &o.types {
        let bs = ty.block_size();
        let cols = o.cols.div_ceil(bs) * bs;
        let rb = row_bytes(ty, cols).expect("row size");
        // 16 distinct rows, repeated: the content does not change the speed.
        let mut distinct = vec![0u8; rb * 16];
        for r in distinct.chunks_exact_mut(rb) {
            let x: Vec<f32> = (0..cols).map(|_| rng.unit()).collect();
            quantize_row(ty, &x, r).expect("quantize");
        }
        let w: Vec<u8> = distinct.iter().copied().cycle().take(rb * o.rows).collect();
        let x: Vec<f32> = (0..cols).map(|_| rng.unit()).collect();
        let at = vec_dot_type(ty);
        let mut act = vec![0u8; row_bytes(at, cols).unwrap()];
        quantize_activations(at, &x, &mut act).expect("activations");
        let mut out = vec![0f32; o.rows];

        let mut per_row = |f: fn(GgmlType, &[u8], &[u8], usize) -> Result<f32, _>| {
            let out = &mut out;
            let (w, act) = (&w, &act);
            time(o.secs, move || {
                for (y, wr) in out.iter_mut().zip(w.chunks_exact(rb)) {
                    *y = f(ty, black_box(wr), black_box(act), cols).unwrap();
                }
                black_box(&mut *out);
            })
        };
        let t_ref = o.reference.then(|| per_row(vec_dot_reference));
        let t_dot = per_row(vec_dot);
        let t_rows = time(o.secs, || {
            vec_dot_rows(ty, black_box(&w), black_box(&act), cols, &mut out).unwrap();
            black_box(&mut out);
        });
        // What the component's matmul does: each chunk of rows copied into scratch
        // (there a `memory.copy` out of the weights memory) before the product.
        let rows_per_chunk = (COPY_CHUNK / rb).max(1);
        let mut scratch = vec![0u8; rows_per_chunk * rb];
        let t_copied = time(o.secs, || {
            for (wc, oc) in w
                .chunks(rows_per_chunk * rb)
                .zip(out.chunks_mut(rows_per_chunk))
            {
                let s = &mut scratch[..wc.len()];
                s.copy_from_slice(black_box(wc));
                vec_dot_rows(ty, s, black_box(&act), cols, oc).unwrap();
            }
            black_box(&mut out);
        });

        // Prefill: 4 tokens against each chunk, per token or in tiles.
        const TOKENS: usize = 4;
        let mut acts = vec![0u8; act.len() * TOKENS];
        for a in acts.chunks_exact_mut(act.len()) {
            let x: Vec<f32> = (0..cols).map(|_| rng.unit()).collect();
            quantize_activations(at, &x, a).expect("activations");
        }
        let mut out4 = vec![0f32; o.rows * TOKENS];
        let rows_per_chunk = (CHUNK / rb).max(1);
        let chunks = || w.chunks(rows_per_chunk * rb).enumerate();
        let t_tok_rows = time(o.secs, || {
            for (c, wc) in chunks() {
                let (r0, nr) = (c * rows_per_chunk, wc.len() / rb);
                for (t, a) in acts.chunks_exact(act.len()).enumerate() {
                    let oc = &mut out4[t * o.rows + r0..][..nr];
                    vec_dot_rows(ty, black_box(wc), black_box(a), cols, oc).unwrap();
                }
            }
            black_box(&mut out4);
        });
        let t_tiles = time(o.secs, || {
            for (c, wc) in chunks() {
                let (r0, nr) = (c * rows_per_chunk, wc.len() / rb);
                let oc = &mut out4[r0..];
                vec_dot_tokens(ty, black_box(wc), nr, black_box(&acts), cols, oc, o.rows).unwrap();
            }
            black_box(&mut out4);
        });
        let gmacs4 = |t: Duration| (TOKENS * o.rows * cols) as f64 / t.as_secs_f64() / 1e9;

        let bytes = w.len() as f64;
        let macs = (o.rows * cols) as f64;
        let gbs = |t: Duration| bytes / t.as_secs_f64() / 1e9;
        let gmacs = |t: Duration| macs / t.as_secs_f64() / 1e9;
        let fmt = |t: Option<Duration>, f: &dyn Fn(Duration) -> f64| {
            t.map_or("-".to_owned(), |t| format!("{:.2}", f(t)))
        };
        let best = t_dot.min(t_rows);
        let speedup = t_ref.map_or("-".to_owned(), |r| {
            format!("{:.1}x", r.as_secs_f64() / best.as_secs_f64())
        });
        let mib = bytes / (1 << 20) as f64;
        if o.tsv {
            println!(
                "{ty}\t{mib:.1}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.2}\t{:.2}",
                fmt(t_ref, &gbs),
                fmt(t_ref, &gmacs),
                fmt(Some(t_dot), &gbs),
                fmt(Some(t_dot), &gmacs),
                fmt(Some(t_rows), &gbs),
                fmt(Some(t_rows), &gmacs),
                fmt(Some(t_copied), &gbs),
                gmacs4(t_tok_rows),
                gmacs4(t_tiles),
            );
        } else {
            println!(
                "| {ty} | {mib:.1} | {} | {} | {} | {} | {} | {} | {} | {speedup} | {:.2} | {:.2} |",
                fmt(t_ref, &gbs),
                fmt(t_ref, &gmacs),
                fmt(Some(t_dot), &gbs),
                fmt(Some(t_dot), &gmacs),
                fmt(Some(t_rows), &gbs),
                fmt(Some(t_rows), &gmacs),
                fmt(Some(t_copied), &gbs),
                gmacs4(t_tok_rows),
                gmacs4(t_tiles),
            );
        }
    }
}
