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

use anyhow::{bail, ensure, Context, Result};
use walrus::ir::{Instr, InstrLocId, MemoryCopy, MemoryGrow, MemorySize, VisitorMut};
use walrus::{FunctionId, ImportKind, MemoryId, ValType};

pub const INTRINSICS_MODULE: &str = "wasm-chord:intrinsics";

#[derive(Clone, Copy, Debug)]
enum Intrinsic {
    Copy,
    Store,
    Grow,
    Size,
}

impl Intrinsic {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "wcopy" => Self::Copy,
            "wstore" => Self::Store,
            "wgrow" => Self::Grow,
            "wsize" => Self::Size,
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

impl VisitorMut for Rewriter<'_> {
    fn visit_instr_mut(&mut self, instr: &mut Instr, _loc: &mut InstrLocId) {
        let func = match instr {
            Instr::Call(call) => call.func,
            Instr::ReturnCall(call) => {
                // Not expected from rustc; a tail call to an intrinsic would need a
                // `return` after the replacement.
                assert!(
                    !self.intrinsics.iter().any(|(f, ..)| *f == call.func),
                    "tail call to a weight-memory intrinsic"
                );
                return;
            }
            _ => return,
        };
        let Some((_, _, which)) = self.intrinsics.iter().find(|(f, ..)| *f == func) else {
            return;
        };
        *instr = match which {
            Intrinsic::Copy => Instr::MemoryCopy(MemoryCopy {
                src: self.weights,
                dst: self.main,
            }),
            Intrinsic::Store => Instr::MemoryCopy(MemoryCopy {
                src: self.main,
                dst: self.weights,
            }),
            Intrinsic::Grow => Instr::MemoryGrow(MemoryGrow {
                memory: self.weights,
            }),
            Intrinsic::Size => Instr::MemorySize(MemorySize {
                memory: self.weights,
            }),
        };
        self.rewritten += 1;
    }
}
