//! Post-link rewrite of the guest's weight-memory intrinsics.
//!
//! Rust can only address memory 0. The guest imports these functions from the
//! private module `wasm-chord:intrinsics`; each call becomes one instruction on a
//! 64-bit memory that this pass adds to the module (defined, empty, memory index 1):
//!
//! | import                                  | becomes                       |
//! |-----------------------------------------|-------------------------------|
//! | `wcopy(dst: i32, src: i64, len: i32)`   | `memory.copy 0 1` (weights -> memory 0) |
//! | `wstore(dst: i64, src: i32, len: i32)`  | `memory.copy 1 0` (memory 0 -> weights) |
//! | `wgrow(delta_pages: i64) -> i64`        | `memory.grow 1`               |
//! | `wsize() -> i64`                        | `memory.size 1` (in pages)    |
//! | `wload128(dst: i32, src: i64)`          | `v128.load 1; v128.store 0` (16 bytes into a stack slot) |
//! | `wload32(src: i64) -> i32`              | `i32.load 1`                  |
//! | `wload16(src: i64) -> i32`              | `i32.load16_u 1`              |

use anyhow::{bail, ensure, Context, Result};
use walrus::ir::{
    ExtendedLoad, Instr, InstrSeq, Load, LoadKind, MemArg, MemoryCopy, MemoryGrow, MemorySize,
    Store, StoreKind, VisitorMut,
};
use walrus::{FunctionId, ImportKind, MemoryId, ValType};

pub const INTRINSICS_MODULE: &str = "wasm-chord:intrinsics";

#[derive(Clone, Copy, Debug)]
enum Intrinsic {
    Copy,
    Store,
    Grow,
    Size,
    Load128,
    Load32,
    Load16,
}

impl Intrinsic {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "wcopy" => Self::Copy,
            "wstore" => Self::Store,
            "wgrow" => Self::Grow,
            "wsize" => Self::Size,
            "wload128" => Self::Load128,
            "wload32" => Self::Load32,
            "wload16" => Self::Load16,
            _ => return None,
        })
    }

    fn signature(self) -> (&'static [ValType], &'static [ValType]) {
        use ValType::{I32, I64};
        match self {
            Self::Copy => (&[I32, I64, I32], &[]),
            Self::Store => (&[I64, I32, I32], &[]),
            Self::Grow => (&[I64], &[I64]),
            Self::Size => (&[], &[I64]),
            Self::Load128 => (&[I32, I64], &[]),
            Self::Load32 | Self::Load16 => (&[I64], &[I32]),
        }
    }
}

pub fn rewrite_intrinsics(core: &[u8]) -> Result<Vec<u8>> {
    let mut config = walrus::ModuleConfig::new();
    config.generate_producers_section(false);
    let mut module = config
        .parse(core)
        .context("walrus could not parse the guest module")?;

    ensure!(
        module.memories.iter().count() == 1,
        "expected exactly one memory in the guest module, found {}",
        module.memories.iter().count()
    );
    let main = module.memories.iter().next().unwrap();
    ensure!(
        main.import.is_none(),
        "memory 0 must be defined by the guest module"
    );
    ensure!(!main.memory64, "memory 0 must be 32-bit");
    let main = main.id();

    // Find the intrinsic imports.
    let mut found: Vec<(FunctionId, walrus::ImportId, Intrinsic)> = Vec::new();
    for import in module.imports.iter() {
        if import.module != INTRINSICS_MODULE {
            continue;
        }
        let ImportKind::Function(func) = import.kind else {
            bail!(
                "{}::{} must be a function import",
                import.module,
                import.name
            );
        };
        let Some(which) = Intrinsic::from_name(&import.name) else {
            bail!("unknown intrinsic {}::{}", import.module, import.name);
        };
        let ty = module.types.get(module.funcs.get(func).ty());
        let (params, results) = which.signature();
        ensure!(
            ty.params() == params && ty.results() == results,
            "intrinsic {} has type {:?} -> {:?}, expected {:?} -> {:?}",
            import.name,
            ty.params(),
            ty.results(),
            params,
            results
        );
        found.push((func, import.id(), which));
    }
    if found.is_empty() {
        bail!("the guest module imports no {INTRINSICS_MODULE} functions: nothing reads the weights memory");
    }

    // The weights memory: 64-bit, defined here, empty, unbounded (the guest grows it).
    let weights = module.memories.add_local(false, true, 0, None, None);
    module.memories.get_mut(weights).name = Some("weights".into());

    let mut rewriter = Rewriter {
        intrinsics: &found,
        main,
        weights,
        rewritten: 0,
    };
    for (_, func) in module.funcs.iter_local_mut() {
        let entry = func.entry_block();
        walrus::ir::dfs_pre_order_mut(&mut rewriter, func, entry);
    }
    ensure!(rewriter.rewritten > 0, "no intrinsic call found to rewrite");

    // Any remaining reference (a table entry, say) would leave a dangling import.
    for (func, import, which) in &found {
        for elem in module.elements.iter() {
            if let walrus::ElementItems::Functions(fs) = &elem.items {
                ensure!(
                    !fs.contains(func),
                    "intrinsic {which:?} is referenced from a table"
                );
            }
        }
        module.imports.delete(*import);
        module.funcs.delete(*func);
    }

    // DWARF no longer matches the code once rewritten; drop it and keep the module small.
    let debug: Vec<_> = module
        .customs
        .iter()
        .filter(|(_, c)| c.name().starts_with(".debug"))
        .map(|(id, _)| id)
        .collect();
    for id in debug {
        module.customs.delete(id);
    }

    Ok(module.emit_wasm())
}

struct Rewriter<'a> {
    intrinsics: &'a [(FunctionId, walrus::ImportId, Intrinsic)],
    main: MemoryId,
    weights: MemoryId,
    rewritten: usize,
}

impl Rewriter<'_> {
    /// The instructions that replace a call to `which`.
    fn replacement(&self, which: Intrinsic) -> Vec<Instr> {
        // Weight loads may be unaligned; the stack slot of `wload128` is not assumed
        // aligned either.
        let arg = MemArg {
            align: 1,
            offset: 0,
        };
        let load = |kind| {
            Instr::Load(Load {
                memory: self.weights,
                kind,
                arg,
            })
        };
        match which {
            Intrinsic::Copy => vec![Instr::MemoryCopy(MemoryCopy {
                src: self.weights,
                dst: self.main,
            })],
            Intrinsic::Store => vec![Instr::MemoryCopy(MemoryCopy {
                src: self.main,
                dst: self.weights,
            })],
            Intrinsic::Grow => vec![Instr::MemoryGrow(MemoryGrow {
                memory: self.weights,
            })],
            Intrinsic::Size => vec![Instr::MemorySize(MemorySize {
                memory: self.weights,
            })],
            // Stack [dst, src] -> [dst, v] -> [].
            Intrinsic::Load128 => vec![
                load(LoadKind::V128),
                Instr::Store(Store {
                    memory: self.main,
                    kind: StoreKind::V128,
                    arg,
                }),
            ],
            Intrinsic::Load32 => vec![load(LoadKind::I32 { atomic: false })],
            Intrinsic::Load16 => vec![load(LoadKind::I32_16 {
                kind: ExtendedLoad::ZeroExtend,
            })],
        }
    }
}

impl VisitorMut for Rewriter<'_> {
    // Whole sequences, because some calls become two instructions.
    fn start_instr_seq_mut(&mut self, seq: &mut InstrSeq) {
        let intrinsic = |instr: &Instr| {
            let func = match instr {
                Instr::Call(call) => call.func,
                Instr::ReturnCall(call) => {
                    // Not expected from rustc; a tail call to an intrinsic would need a
                    // `return` after the replacement.
                    assert!(
                        !self.intrinsics.iter().any(|(f, ..)| *f == call.func),
                        "tail call to a weight-memory intrinsic"
                    );
                    return None;
                }
                _ => return None,
            };
            self.intrinsics
                .iter()
                .find(|(f, ..)| *f == func)
                .map(|(_, _, which)| *which)
        };
        if !seq.instrs.iter().any(|(i, _)| intrinsic(i).is_some()) {
            return;
        }
        let mut out = Vec::with_capacity(seq.instrs.len() + 8);
        for (instr, loc) in seq.instrs.drain(..) {
            match intrinsic(&instr) {
                Some(which) => {
                    out.extend(self.replacement(which).into_iter().map(|i| (i, loc)));
                    self.rewritten += 1;
                }
                None => out.push((instr, loc)),
            }
        }
        seq.instrs = out;
    }
}
