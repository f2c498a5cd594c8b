//! Component surgery: link K shard modules into the componentized engine.
//!
//! `wit_component` refuses core modules that import memories, so the engine is
//! componentized with its shard memories *defined*; here the engine module is
//! changed to import them (`wasm-chord:shardK` / `memory`), and the component
//! gains K data-only shard modules and their K core instances, inserted right
//! before the first core instance: after the engine's own modules (Wasmtime 48
//! records code offsets as u32, so code must stay in the first 4 GiB of the
//! file), before every instantiation. Later core module indices and every core
//! instance index move up by K, and the engine's instantiation gets one more
//! argument per shard. A resident model's one shard is the engine's memory 0
//! itself: the engine imports memory 0 from the shard module instead of defining
//! it (the shard's data segment is its copy-on-write image; the engine's own data
//! segments are copied in at instantiation, as for any imported memory).

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

/// The engine component re-encoded around the shards (without the 8-byte preamble).
pub struct Linked {
    /// Sections before the shards: the engine's modules (and types, imports...).
    pub before: Vec<u8>,
    /// Sections after the shards' instances.
    pub after: Vec<u8>,
    /// Core module index of shard 0 (shard k is `first_shard + k`); core instance
    /// k is shard k.
    pub first_shard: u32,
}

/// Re-encodes the engine component for a component in which core modules
/// `first_shard..first_shard + shards` and core instances `0..shards` are the shards
/// (`resident`: one shard, memory 0).
pub fn link_shards(component: &[u8], shards: u32, resident: bool) -> Result<Linked, PackError> {
    let defined = if resident { 1 } else { 1 + shards };
    let scan = scan(component, defined)?;
    let main_bytes = import_shard_memories(scan.main_bytes, shards, resident)?;
    let mut linker = ShardLinker {
        shards,
        first_shard: scan.modules_before_instances,
        main: scan.main,
        main_bytes,
        modules_seen: 0,
        main_instantiated: false,
        split: None,
    };
    let mut out = wasm_encoder::Component::new();
    linker
        .parse_component(&mut out, Parser::new(0), component)
        .map_err(|e| err(format!("re-encoding the engine component: {e:?}")))?;
    if !linker.main_instantiated {
        return Err(err("the engine module is never instantiated"));
    }
    let split = linker
        .split
        .ok_or_else(|| err("the engine component has no core instances"))?;
    let bytes = out.finish();
    Ok(Linked {
        before: bytes[8..split].to_vec(),
        after: bytes[split..].to_vec(),
        first_shard: scan.modules_before_instances,
    })
}

struct Scan<'a> {
    /// Index of the engine module.
    main: u32,
    main_bytes: &'a [u8],
    /// Core modules defined before the first core instance section.
    modules_before_instances: u32,
}

/// Finds the core module that defines `memories` memories (the engine) and counts
/// the modules defined before the first core instance.
fn scan(component: &[u8], memories: u32) -> Result<Scan<'_>, PackError> {
    let mut index = 0;
    let mut found = None;
    let mut before_instances = None;
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
                if count_memories(module)? == memories {
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
            Payload::InstanceSection(_) => {
                before_instances.get_or_insert(index);
            }
            Payload::End(_) => break,
            _ => {}
        }
    }
    let (main, main_bytes) =
        found.ok_or_else(|| err("no core module defines the shard memories"))?;
    let modules_before_instances =
        before_instances.ok_or_else(|| err("the engine component has no core instances"))?;
    if main >= modules_before_instances {
        return Err(err(
            "the engine module is defined after the first core instance",
        ));
    }
    Ok(Scan {
        main,
        main_bytes,
        modules_before_instances,
    })
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

/// The engine module with memories 1..=K (the shards) imported instead of defined,
/// or (`resident`) memory 0 imported from the one shard.
fn import_shard_memories(module: &[u8], shards: u32, resident: bool) -> Result<Vec<u8>, PackError> {
    let mut config = walrus::ModuleConfig::new();
    config.generate_producers_section(false);
    let mut m = config
        .parse(module)
        .map_err(|e| err(format!("walrus could not parse the engine module: {e}")))?;
    let ids: Vec<_> = m.memories.iter().map(|mem| mem.id()).collect();
    if resident {
        if shards != 1 || ids.len() != 1 {
            return Err(err(
                "a resident model is one shard in the engine's only memory",
            ));
        }
        let import = m.imports.add(
            &shard_import_module(0),
            "memory",
            ImportKind::Memory(ids[0]),
        );
        m.memories.get_mut(ids[0]).import = Some(import);
        return Ok(m.emit_wasm());
    }
    for (k, &id) in ids.iter().skip(1).enumerate() {
        let mem = m.memories.get(id);
        if mem.import.is_some() || mem.memory64 || !mem.data_segments.is_empty() {
            return Err(err(format!(
                "memory {} is not an empty shard memory",
                k + 1
            )));
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
    /// Original modules below this index keep it; the others move up by `shards`.
    first_shard: u32,
    /// Index of the engine module before the shards are inserted.
    main: u32,
    main_bytes: Vec<u8>,
    modules_seen: u32,
    main_instantiated: bool,
    /// Byte offset (in the re-encoded component) where the shards go.
    split: Option<usize>,
}

impl ShardLinker {
    fn module(&self, module: u32) -> u32 {
        if module < self.first_shard {
            module
        } else {
            module + self.shards
        }
    }
}

impl Reencode for ShardLinker {
    type Error = Infallible;
}

impl ReencodeComponent for ShardLinker {
    fn module_index(&mut self, module: u32) -> u32 {
        self.module(module)
    }

    fn instance_index(&mut self, instance: u32) -> u32 {
        instance + self.shards
    }

    fn outer_module_index(&mut self, count: u32, module: u32) -> u32 {
        // Only wit-component's top level has modules; nested references are by type.
        if count == 0 {
            self.module(module)
        } else {
            module
        }
    }

    fn parse_component_payload(
        &mut self,
        component: &mut wasm_encoder::Component,
        payload: Payload<'_>,
        whole_component: &[u8],
    ) -> Result<(), wasm_encoder::reencode::Error<Infallible>> {
        if matches!(payload, Payload::InstanceSection(_)) && self.split.is_none() {
            self.split = Some(component.as_slice().len());
        }
        wasm_encoder::reencode::component_utils::parse_component_payload(
            self,
            component,
            payload,
            whole_component,
        )
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
            wasmparser::Instance::Instantiate { module_index, args }
                if module_index == self.main =>
            {
                self.main_instantiated = true;
                let names: Vec<String> =
                    (0..self.shards as usize).map(shard_import_module).collect();
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
                instances.instantiate(self.module(module_index), all);
                Ok(())
            }
            other => {
                wasm_encoder::reencode::component_utils::parse_instance(self, instances, other)
            }
        }
    }
}
