//! Post-link rewrite of the packed engine's intrinsics (module `wasm-chord:packed`)
//! for one model: the module gets one 32-bit memory per shard (defined here, sized
//! exactly; `surgery` later turns them into imports), or, for a *resident* model
//! (one shard), memory 0 grows by the shard's pages, which `surgery` turns into an
//! import of the shard's memory, and
//!
//! | import                                 | becomes                                  |
//! |----------------------------------------|------------------------------------------|
//! | `copy(dst: i32, src: i64, len: i32)`   | call to a dispatcher: `br_table` on `src >> 32`, then `memory.copy 0 shard` at `src & 0xffff_ffff` |
//! | `len() -> i64`                         | `i64.const` end of the virtual address space |
//! | `header-len() -> i64`                  | `i64.const` bytes of the packed header      |
//! | `resident-base() -> i64`               | `i64.const` memory-0 address of the shard (resident), else `u64::MAX` |

use walrus::ir::{BinaryOp, Instr, InstrLocId, InstrSeqId, UnaryOp, Value, VisitorMut};
use walrus::{FunctionBuilder, FunctionId, ImportKind, MemoryId, Module, ValType};

use crate::{PackError, PAGE};

pub const PACKED_MODULE: &str = "wasm-chord:packed";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Intrinsic {
    Copy,
    Len,
    HeaderLen,
    ResidentBase,
}

impl Intrinsic {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "copy" => Self::Copy,
            "len" => Self::Len,
            "header-len" => Self::HeaderLen,
            "resident-base" => Self::ResidentBase,
            _ => return None,
        })
    }

    fn signature(self) -> (&'static [ValType], &'static [ValType]) {
        use ValType::{I32, I64};
        match self {
            Self::Copy => (&[I32, I64, I32], &[]),
            Self::Len | Self::HeaderLen | Self::ResidentBase => (&[], &[I64]),
        }
    }
}

/// What the rewritten module must know about the packed model.
pub struct ShardMemories<'a> {
    /// Pages of each shard memory.
    pub pages: &'a [u64],
    pub virtual_len: u64,
    pub header_len: u64,
    /// One shard, placed in memory 0 above the engine's own initial memory instead of
    /// in a memory of its own: the kernels then read the weights in place.
    pub resident: bool,
}

/// The rewritten engine module.
pub struct Rewritten {
    pub module: Vec<u8>,
    /// Resident: where the shard starts in memory 0 (a page boundary; memory 0's
    /// initial size ends with the shard).
    pub resident_base: Option<u64>,
}

fn err(why: impl Into<String>) -> PackError {
    PackError::Engine(why.into())
}

/// Rewrites the packed engine's linked core module (see the module docs).
pub fn rewrite_packed(core: &[u8], shards: &ShardMemories) -> Result<Rewritten, PackError> {
    let mut config = walrus::ModuleConfig::new();
    config.generate_producers_section(false);
    let mut module = config
        .parse(core)
        .map_err(|e| err(format!("walrus could not parse the packed engine: {e}")))?;

    let main = {
        let mut memories = module.memories.iter();
        match (memories.next(), memories.next()) {
            (Some(m), None) if m.import.is_none() && !m.memory64 => m.id(),
            _ => {
                return Err(err(
                    "the packed engine must define exactly one 32-bit memory (is it the \
                     `packed` build from `cargo xtask build`?)",
                ))
            }
        }
    };

    let mut found: Vec<(FunctionId, walrus::ImportId, Intrinsic)> = Vec::new();
    for import in module.imports.iter() {
        if import.module != PACKED_MODULE {
            continue;
        }
        let (ImportKind::Function(func), Some(which)) =
            (&import.kind, Intrinsic::from_name(&import.name))
        else {
            return Err(err(format!(
                "unknown import {}::{}",
                import.module, import.name
            )));
        };
        let ty = module.types.get(module.funcs.get(*func).ty());
        let (params, results) = which.signature();
        if ty.params() != params || ty.results() != results {
            return Err(err(format!("intrinsic {} has the wrong type", import.name)));
        }
        found.push((*func, import.id(), which));
    }
    if !found.iter().any(|f| f.2 == Intrinsic::Copy) {
        return Err(err(format!(
            "the engine imports no {PACKED_MODULE}::copy: not the packed build \
             (`cargo xtask build --release` writes target/wasm-chord-packed-engine.wasm)"
        )));
    }

    // Each shard's memory and the address of its byte 0 in it.
    let (shard_memories, resident_base) = if shards.resident {
        let [pages] = shards.pages else {
            return Err(err("a resident model must fit in one shard"));
        };
        // Above everything the linker placed and the allocator's initial region
        // (`__heap_end`): the allocator only grows memory 0 beyond its current size.
        let memory = module.memories.get_mut(main);
        let base_pages = memory.initial;
        memory.initial = base_pages + pages;
        if memory.maximum.is_some_and(|max| max < memory.initial) {
            return Err(err("memory 0 has a maximum below the model's end"));
        }
        (vec![(main, base_pages * PAGE)], Some(base_pages * PAGE))
    } else {
        let memories = shards
            .pages
            .iter()
            .enumerate()
            .map(|(k, &pages)| {
                let id = module
                    .memories
                    .add_local(false, false, pages, Some(pages), None);
                module.memories.get_mut(id).name = Some(format!("shard{k}"));
                (id, 0)
            })
            .collect();
        (memories, None)
    };
    let dispatch = build_dispatch(&mut module, main, &shard_memories);

    let mut rewriter = Rewriter {
        intrinsics: &found,
        dispatch,
        virtual_len: shards.virtual_len,
        header_len: shards.header_len,
        resident_base: resident_base.unwrap_or(u64::MAX),
        bad_tail_call: false,
    };
    for (_, func) in module.funcs.iter_local_mut() {
        let entry = func.entry_block();
        walrus::ir::dfs_pre_order_mut(&mut rewriter, func, entry);
    }
    if rewriter.bad_tail_call {
        return Err(err("a tail call to a packed intrinsic cannot be rewritten"));
    }
    for (func, import, which) in &found {
        for elem in module.elements.iter() {
            if let walrus::ElementItems::Functions(fs) = &elem.items {
                if fs.contains(func) {
                    return Err(err(format!(
                        "intrinsic {which:?} is referenced from a table"
                    )));
                }
            }
        }
        module.imports.delete(*import);
        module.funcs.delete(*func);
    }
    // DWARF no longer matches the rewritten code.
    let debug: Vec<_> = module
        .customs
        .iter()
        .filter(|(_, c)| c.name().starts_with(".debug"))
        .map(|(id, _)| id)
        .collect();
    for id in debug {
        module.customs.delete(id);
    }
    Ok(Rewritten {
        module: module.emit_wasm(),
        resident_base,
    })
}

/// `(dst: i32, src: i64, len: i32)`: nested blocks around a `br_table` on the
/// shard index; block k's end is followed by the copy from shard k (its memory, and
/// the address of the shard's byte 0 there); an index past the last shard traps.
fn build_dispatch(module: &mut Module, main: MemoryId, shards: &[(MemoryId, u64)]) -> FunctionId {
    use ValType::{I32, I64};
    let mut b = FunctionBuilder::new(&mut module.types, &[I32, I64, I32], &[]);
    b.name("wasm_chord_shard_copy".into());
    let dst = module.locals.add(I32);
    let src = module.locals.add(I64);
    let len = module.locals.add(I32);

    // blocks[k] is exited by `br k`; blocks[K] is the out-of-range default.
    let blocks: Vec<InstrSeqId> = (0..=shards.len())
        .map(|_| b.dangling_instr_seq(None).id())
        .collect();
    b.instr_seq(blocks[0])
        .local_get(src)
        .i64_const(32)
        .binop(BinaryOp::I64ShrU)
        .unop(UnaryOp::I32WrapI64)
        .br_table(blocks[..shards.len()].into(), blocks[shards.len()]);
    for (k, &(shard, base)) in shards.iter().enumerate() {
        b.instr_seq(blocks[k + 1])
            .instr(walrus::ir::Block { seq: blocks[k] })
            .local_get(dst)
            .local_get(src)
            .unop(UnaryOp::I32WrapI64)
            .i32_const(base as i32)
            .binop(BinaryOp::I32Add)
            .local_get(len)
            .memory_copy(shard, main)
            .return_();
    }
    b.func_body()
        .instr(walrus::ir::Block {
            seq: blocks[shards.len()],
        })
        .unreachable();
    b.finish(vec![dst, src, len], &mut module.funcs)
}

struct Rewriter<'a> {
    intrinsics: &'a [(FunctionId, walrus::ImportId, Intrinsic)],
    dispatch: FunctionId,
    virtual_len: u64,
    header_len: u64,
    resident_base: u64,
    bad_tail_call: bool,
}

impl VisitorMut for Rewriter<'_> {
    fn visit_instr_mut(&mut self, instr: &mut Instr, _loc: &mut InstrLocId) {
        let func = match instr {
            Instr::Call(call) => call.func,
            Instr::ReturnCall(call) => {
                self.bad_tail_call |= self.intrinsics.iter().any(|(f, ..)| *f == call.func);
                return;
            }
            _ => return,
        };
        let Some((_, _, which)) = self.intrinsics.iter().find(|(f, ..)| *f == func) else {
            return;
        };
        let constant = |v: u64| {
            Instr::Const(walrus::ir::Const {
                value: Value::I64(v as i64),
            })
        };
        *instr = match which {
            Intrinsic::Copy => Instr::Call(walrus::ir::Call {
                func: self.dispatch,
            }),
            Intrinsic::Len => constant(self.virtual_len),
            Intrinsic::HeaderLen => constant(self.header_len),
            Intrinsic::ResidentBase => constant(self.resident_base),
        };
    }
}
