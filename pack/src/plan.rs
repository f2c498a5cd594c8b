//! Shard planning: which tensor goes to which shard memory, at which offset.
//!
//! A packed component keeps its weights in K shard modules, each defining one
//! 32-bit memory filled by one active data segment. Wasmtime (wasmparser) refuses
//! any core module over 1 GiB inside a component, so a shard holds at most
//! [`MAX_SHARD_BYTES`]. Shard 0 starts with the packed GGUF header. Tensors are
//! never split; the tensors of one layer (`blk.N.*`) stay in one shard whenever the
//! layer fits in a shard, so a token's pass walks the shards in order.

use thiserror::Error;

/// Largest shard (bytes of memory data): 1 GiB minus room for the module's own
/// sections (header, memory, export, data-segment framing).
pub const MAX_SHARD_BYTES: u64 = (1 << 30) - (64 << 10);

/// The default shard size: 1023 MiB.
pub const DEFAULT_SHARD_BYTES: u64 = 1023 << 20;

/// One tensor to place, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpan {
    pub name: String,
    pub size: u64,
}

/// Where one tensor lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub shard: u32,
    /// Offset inside the shard memory.
    pub offset: u64,
}

impl Placement {
    /// The address the guest uses: `shard << 32 | offset`.
    pub fn virtual_address(self) -> u64 {
        (u64::from(self.shard) << 32) | self.offset
    }
}

/// The result of planning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardPlan {
    /// One per tensor, in the order given.
    pub placements: Vec<Placement>,
    /// Bytes of data in each shard (shard 0 includes the header).
    pub shard_lens: Vec<u64>,
}

impl ShardPlan {
    /// End of the virtual address space: the last shard's address plus its length.
    pub fn virtual_len(&self) -> u64 {
        let last = self.shard_lens.len() - 1;
        ((last as u64) << 32) | self.shard_lens[last]
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("shard size {0} is out of range (1 byte .. {MAX_SHARD_BYTES} bytes)")]
    BadShardSize(u64),
    #[error("alignment {0} is not a power of two")]
    BadAlignment(u64),
    #[error("the GGUF header ({header} bytes) does not fit in a shard of {shard_size} bytes")]
    HeaderTooLarge { header: u64, shard_size: u64 },
    #[error(
        "tensor '{name}' ({size} bytes) is larger than a shard ({shard_size} bytes): \
         raise --shard-size (at most {MAX_SHARD_BYTES})"
    )]
    TensorTooLarge {
        name: String,
        size: u64,
        shard_size: u64,
    },
}

/// The layer a tensor belongs to (`blk.N.`), if any.
fn layer_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("blk.")?;
    let end = rest.find('.')?;
    Some(&rest[..end])
}

fn align(x: u64, alignment: u64) -> u64 {
    x.div_ceil(alignment) * alignment
}

/// Places `tensors` into shards of at most `shard_size` bytes each, every tensor at
/// an `alignment`-aligned offset; shard 0 starts with `header_len` bytes of header.
pub fn plan_shards(
    tensors: &[TensorSpan],
    header_len: u64,
    alignment: u64,
    shard_size: u64,
) -> Result<ShardPlan, PlanError> {
    if shard_size == 0 || shard_size > MAX_SHARD_BYTES {
        return Err(PlanError::BadShardSize(shard_size));
    }
    if !alignment.is_power_of_two() {
        return Err(PlanError::BadAlignment(alignment));
    }
    if header_len > shard_size {
        return Err(PlanError::HeaderTooLarge {
            header: header_len,
            shard_size,
        });
    }
    if let Some(t) = tensors.iter().find(|t| t.size > shard_size) {
        return Err(PlanError::TensorTooLarge {
            name: t.name.clone(),
            size: t.size,
            shard_size,
        });
    }

    // Groups of consecutive tensors: one per layer, one per tensor outside layers.
    let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, t) in tensors.iter().enumerate() {
        match (groups.last_mut(), layer_of(&t.name)) {
            (Some(g), Some(layer)) if layer_of(&tensors[g.end - 1].name) == Some(layer) => {
                g.end = i + 1
            }
            _ => groups.push(i..i + 1),
        }
    }

    let mut placements = Vec::with_capacity(tensors.len());
    let mut shard_lens = vec![header_len];
    // Offset where the current shard's first tensor goes when it is still empty.
    let mut empty_at = align(header_len, alignment);
    let fits = |at: u64, size: u64| align(at, alignment) + size <= shard_size;
    for g in groups {
        let group = &tensors[g];
        let span = |from: u64| {
            group
                .iter()
                .fold(from, |at, t| align(at, alignment) + t.size)
        };
        let cur = *shard_lens.last().unwrap();
        let at_start = align(cur, alignment) == empty_at;
        // A layer that does not fit in what is left, but would fit in a fresh
        // shard, moves to a fresh shard whole.
        if !at_start && span(cur) > shard_size && span(0) <= shard_size {
            shard_lens.push(0);
            empty_at = 0;
        }
        for t in group {
            let mut at = *shard_lens.last().unwrap();
            if !fits(at, t.size) {
                shard_lens.push(0);
                empty_at = 0;
                at = 0;
            }
            let offset = align(at, alignment);
            placements.push(Placement {
                shard: (shard_lens.len() - 1) as u32,
                offset,
            });
            *shard_lens.last_mut().unwrap() = offset + t.size;
        }
    }
    Ok(ShardPlan {
        placements,
        shard_lens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, size: u64) -> TensorSpan {
        TensorSpan {
            name: name.into(),
            size,
        }
    }

    /// Two layers of 3 tensors plus embeddings and output.
    fn model() -> Vec<TensorSpan> {
        let mut v = vec![t("token_embd.weight", 1000)];
        for l in 0..4 {
            v.push(t(&format!("blk.{l}.attn_q.weight"), 300));
            v.push(t(&format!("blk.{l}.attn_norm.weight"), 10));
            v.push(t(&format!("blk.{l}.ffn_up.weight"), 500));
        }
        v.push(t("output_norm.weight", 10));
        v
    }

    /// Every tensor inside its shard, aligned, without overlaps.
    fn check_invariants(
        tensors: &[TensorSpan],
        plan: &ShardPlan,
        header: u64,
        align_to: u64,
        cap: u64,
    ) {
        assert_eq!(plan.placements.len(), tensors.len());
        let mut ranges: Vec<(u32, u64, u64)> = vec![(0, 0, header)];
        for (t, p) in tensors.iter().zip(&plan.placements) {
            assert_eq!(p.offset % align_to, 0, "{} misaligned", t.name);
            assert!(p.offset + t.size <= plan.shard_lens[p.shard as usize]);
            ranges.push((p.shard, p.offset, p.offset + t.size));
        }
        ranges.sort();
        for w in ranges.windows(2) {
            assert!(w[0].0 != w[1].0 || w[0].2 <= w[1].1, "overlap {w:?}");
        }
        assert!(plan.shard_lens.iter().all(|&l| l <= cap));
    }

    #[test]
    fn everything_fits_in_one_shard() {
        let m = model();
        let plan = plan_shards(&m, 100, 32, 1 << 20).unwrap();
        assert_eq!(plan.shard_lens.len(), 1);
        assert_eq!(
            plan.placements[0],
            Placement {
                shard: 0,
                offset: 128
            }
        );
        check_invariants(&m, &plan, 100, 32, 1 << 20);
        // Tensors follow each other in file order, aligned.
        assert_eq!(plan.placements[1].offset, 128 + 1000 + 24);
        assert_eq!(plan.virtual_len(), plan.shard_lens[0]);
    }

    #[test]
    fn layers_are_not_split_when_they_fit() {
        let m = model();
        // A layer takes 300 + 10(+22 padding) + 500 = 832 bytes (with 32-byte alignment).
        let cap = 2000;
        let plan = plan_shards(&m, 64, 32, cap).unwrap();
        check_invariants(&m, &plan, 64, 32, cap);
        for l in 0..4 {
            let shards: Vec<u32> = (0..3)
                .map(|i| plan.placements[1 + 3 * l + i].shard)
                .collect();
            assert!(
                shards.iter().all(|&s| s == shards[0]),
                "layer {l} split: {shards:?}"
            );
        }
        // A layer spans 852 bytes from a 32-aligned start. Shard 0: header, embeddings
        // (64..1064), layer 0 (1088..1940); layer 1 would overflow it and opens shard 1,
        // which also takes layer 2 (864..1716); layer 3 and output_norm go to shard 2.
        assert_eq!(
            plan.placements[1],
            Placement {
                shard: 0,
                offset: 1088
            }
        );
        assert_eq!(
            plan.placements[4],
            Placement {
                shard: 1,
                offset: 0
            }
        );
        assert_eq!(
            plan.placements[7],
            Placement {
                shard: 1,
                offset: 864
            }
        );
        assert_eq!(
            plan.placements[10],
            Placement {
                shard: 2,
                offset: 0
            }
        );
        assert_eq!(plan.shard_lens.len(), 3);
        assert_eq!(
            plan.placements[4].virtual_address(),
            (1u64 << 32) | plan.placements[4].offset
        );
        assert_eq!(plan.virtual_len(), (2u64 << 32) | plan.shard_lens[2]);
    }

    #[test]
    fn a_layer_larger_than_a_shard_is_split_by_tensor() {
        let m = vec![
            t("blk.0.a", 600),
            t("blk.0.b", 600),
            t("blk.0.c", 600),
            t("blk.1.a", 100),
        ];
        let plan = plan_shards(&m, 0, 32, 1000).unwrap();
        check_invariants(&m, &plan, 0, 32, 1000);
        let shards: Vec<u32> = plan.placements.iter().map(|p| p.shard).collect();
        assert_eq!(shards, vec![0, 1, 2, 2]);
    }

    #[test]
    fn a_tensor_larger_than_a_shard_is_an_error() {
        let m = vec![t("token_embd.weight", 5000), t("blk.0.a", 10)];
        assert_eq!(
            plan_shards(&m, 0, 32, 4096),
            Err(PlanError::TensorTooLarge {
                name: "token_embd.weight".into(),
                size: 5000,
                shard_size: 4096
            })
        );
    }

    #[test]
    fn bad_parameters_are_errors() {
        let m = model();
        assert_eq!(plan_shards(&m, 0, 32, 0), Err(PlanError::BadShardSize(0)));
        assert_eq!(
            plan_shards(&m, 0, 32, 2 << 30),
            Err(PlanError::BadShardSize(2 << 30))
        );
        assert_eq!(
            plan_shards(&m, 0, 24, 4096),
            Err(PlanError::BadAlignment(24))
        );
        assert_eq!(
            plan_shards(&m, 5000, 32, 4096),
            Err(PlanError::HeaderTooLarge {
                header: 5000,
                shard_size: 4096
            })
        );
    }

    #[test]
    fn layer_names() {
        assert_eq!(layer_of("blk.12.ffn_up.weight"), Some("12"));
        assert_eq!(layer_of("token_embd.weight"), None);
        assert_eq!(layer_of("blk"), None);
    }
}
