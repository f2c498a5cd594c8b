//! Component surgery: link K shard modules into the componentized engine.
//!
//! `wit_component` refuses core modules that import memories, so the engine is
//! componentized with its shard memories *defined*; here the engine module is
//! changed to import them (`wasm-chord:shardK` / `memory`), and the component
//! gains, in front of everything else, K data-only shard modules and their K core
//! instances. Every later core module and core instance index therefore moves up by
//! K, and the engine's instantiation gets one more argument per shard.

use std::convert::Infallible;

use walrus::ImportKind;
use wasm_encoder::reencode::{Reencode, ReencodeComponent};
use wasm_encoder::{ComponentSectionId, ModuleArg, RawSection};
use wasmparser::{Parser, Payload};

use crate::PackError;

/// Module name under which the engine imports shard `k`'s memory.
pub fn shard_import_module(k: usize) -> String {
    format!("wasm-chord:shard{k}")
}

fn err(why: impl Into<String>) -> PackError {
    PackError::Component(why.into())
}

/// The engine component's sections, re-encoded (without the 8-byte preamble), for
/// a component in which core modules and instances `0..shards` are the shards.
pub fn link_shards(component: &[u8], shards: u32) -> Result<Vec<u8>, PackError> {
    let (main, main_bytes) = find_engine_module(component, shards)?;
    let main_bytes = import_shard_memories(main_bytes, shards)?;
    let mut linker = ShardLinker {
        shards,
        main,
        main_bytes,
        modules_seen: 0,
        main_instantiated: false,
    };
    let mut out = wasm_encoder::Component::new();
    linker
        .parse_component(&mut out, Parser::new(0), component)
        .map_err(|e| err(format!("re-encoding the engine component: {e:?}")))?;
    if !linker.main_instantiated {
        return Err(err("the engine module is never instantiated"));
    }
    let bytes = out.finish();
    Ok(bytes[8..].to_vec())
}

/// Index and bytes of the core module with `1 + shards` memories (the engine's).
fn find_engine_module(component: &[u8], shards: u32) -> Result<(u32, &[u8]), PackError> {
    let mut index = 0;
    let mut found = None;
    let mut parser = Parser::new(0);
    let mut rest = component;
    while !rest.is_empty() {
        let (consumed, payload) = match parser.parse(rest, true) {
            Ok(wasmparser::Chunk::Parsed { consumed, payload }) => (consumed, payload),
            Ok(wasmparser::Chunk::NeedMoreData(_)) => return Err(err("truncated component")),
            Err(e) => return Err(err(e.to_string())),
        };
        rest = &rest[consumed..];
        match payload {
            Payload::ModuleSection {
                unchecked_range, ..
            } => {
                let module = &component[unchecked_range.clone()];
                rest = &rest[unchecked_range.len()..];
                if count_memories(module)? == 1 + shards {
                    if found.is_some() {
                        return Err(err("two core modules look like the engine"));
                    }
                    found = Some((index, module));
                }
                index += 1;
            }
            Payload::ComponentSection {
                unchecked_range, ..
            } => rest = &rest[unchecked_range.len()..],
            Payload::End(_) => break,
            _ => {}
        }
    }
    found.ok_or_else(|| err("no core module defines the shard memories"))
}

fn count_memories(module: &[u8]) -> Result<u32, PackError> {
    for payload in Parser::new(0).parse_all(module) {
        match payload.map_err(|e| err(e.to_string()))? {
            Payload::MemorySection(r) => return Ok(r.count()),
            Payload::CodeSectionStart { .. } => break,
            _ => {}
        }
    }
    Ok(0)
}

/// The engine module with memories 1..=K (the shards) imported instead of defined.
fn import_shard_memories(module: &[u8], shards: u32) -> Result<Vec<u8>, PackError> {
    let mut config = walrus::ModuleConfig::new();
    config.generate_producers_section(false);
    let mut m = config
        .parse(module)
        .map_err(|e| err(format!("walrus could not parse the engine module: {e}")))?;
    let ids: Vec<_> = m.memories.iter().map(|mem| mem.id()).collect();
    for (k, &id) in ids.iter().skip(1).enumerate() {
        let mem = m.memories.get(id);
        if mem.import.is_some() || mem.memory64 || !mem.data_segments.is_empty() {
            return Err(err(format!("memory {} is not an empty shard memory", k + 1)));
        }
        let import = m
            .imports
            .add(&shard_import_module(k), "memory", ImportKind::Memory(id));
        m.memories.get_mut(id).import = Some(import);
    }
    if ids.len() as u32 != 1 + shards {
        return Err(err("the engine module has the wrong number of memories"));
    }
    Ok(m.emit_wasm())
}

struct ShardLinker {
    shards: u32,
    /// Index of the engine module before the shards are inserted.
    main: u32,
    main_bytes: Vec<u8>,
    modules_seen: u32,
    main_instantiated: bool,
}

impl Reencode for ShardLinker {
    type Error = Infallible;
}

impl ReencodeComponent for ShardLinker {
    fn module_index(&mut self, module: u32) -> u32 {
        module + self.shards
    }

    fn instance_index(&mut self, instance: u32) -> u32 {
        instance + self.shards
    }

    fn outer_module_index(&mut self, count: u32, module: u32) -> u32 {
        // Only wit-component's top level has modules; nested references are by type.
        if count == 0 {
            module + self.shards
        } else {
            module
        }
    }

    fn parse_component_submodule(
        &mut self,
        component: &mut wasm_encoder::Component,
        _parser: Parser,
        module: &[u8],
    ) -> Result<(), wasm_encoder::reencode::Error<Infallible>> {
        let index = self.modules_seen;
        self.modules_seen += 1;
        // Modules are copied as they are: their insides do not change.
        let data = if index == self.main {
            &self.main_bytes[..]
        } else {
            module
        };
        component.section(&RawSection {
            id: ComponentSectionId::CoreModule as u8,
            data,
        });
        Ok(())
    }

    fn parse_instance(
        &mut self,
        instances: &mut wasm_encoder::InstanceSection,
        instance: wasmparser::Instance<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Infallible>> {
        match instance {
            wasmparser::Instance::Instantiate { module_index, args } if module_index == self.main => {
                self.main_instantiated = true;
                let names: Vec<String> = (0..self.shards as usize).map(shard_import_module).collect();
                let mut all: Vec<(&str, ModuleArg)> = args
                    .iter()
                    .map(|a| (a.name, ModuleArg::Instance(a.index + self.shards)))
                    .collect();
                all.extend(
                    names
                        .iter()
                        .enumerate()
                        .map(|(k, n)| (n.as_str(), ModuleArg::Instance(k as u32))),
                );
                instances.instantiate(module_index + self.shards, all);
                Ok(())
            }
            other => wasm_encoder::reencode::component_utils::parse_instance(self, instances, other),
        }
    }
}
