//! Serving the WASI 0.3 release candidate through WASI 0.3.0.
//!
//! Spin SDK 4.x apps are built against `wasi:*@0.3.0-rc-2026-03-15` (they export
//! `wasi:http/handler@0.3.0-rc-2026-03-15`); wasmtime 48 implements `wasi:*@0.3.0`. The two
//! define the same types and functions under different version strings, and wasmtime's linker
//! never matches a pre-release version with another version. So before compiling, kvhost
//! renames the component's top-level imports and exports `wasi:PKG/IFACE@RC` to
//! `wasi:PKG/IFACE@0.3.0` ([`alias_release_candidates`]).
//!
//! Why this is safe: only names change, never types. Wasmtime type-checks every import
//! against the definition it is linked to, so if a release candidate differed from 0.3.0 in
//! any function or type, linking would fail with wasmtime's message naming it, instead of
//! running with a wrong type. An interface the component imports at both versions (spin-sdk
//! 5.x apps import both) keeps its release-candidate name, so no two imports collide; the
//! release-candidate one is then linked as a stub like any interface kvhost does not provide.
//!
//! The rewrite touches only the top-level import (id 10) and export (id 11) sections; every
//! other section, nested components included, is copied byte for byte.

use std::collections::HashSet;

/// The pre-release WASI 0.3 versions served as 0.3.0.
pub const RELEASE_CANDIDATES: [&str; 1] = ["0.3.0-rc-2026-03-15"];

/// The WASI 0.3 version wasmtime implements.
pub const WASI_P3: &str = "0.3.0";

const COMPONENT_IMPORT_SECTION: u8 = 10;
const COMPONENT_EXPORT_SECTION: u8 = 11;
/// `\0asm`, then version 0x0d and layer 1: a component.
const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// A component binary that cannot be walked. Compiling it reports the real problem, so the
/// caller passes such a binary on unchanged.
#[derive(Debug)]
pub struct Malformed;

/// A component with release-candidate names renamed.
pub struct Aliased {
    /// The rewritten component.
    pub bytes: Vec<u8>,
    /// The names renamed, as they were.
    pub renamed: Vec<String>,
}

/// `bytes` with release-candidate WASI names renamed to 0.3.0; `Ok(None)` when there is
/// nothing to rename or `bytes` is not a component.
pub fn alias_release_candidates(bytes: &[u8]) -> Result<Option<Aliased>, Malformed> {
    if !bytes.starts_with(&COMPONENT_HEADER) {
        return Ok(None);
    }
    let sections = sections(bytes)?;
    // Each import and export section's items, read once; `None` for other sections.
    let items = sections
        .iter()
        .map(|section| match section.id {
            COMPONENT_IMPORT_SECTION | COMPONENT_EXPORT_SECTION => {
                items(section.payload, section.id).map(Some)
            }
            _ => Ok(None),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut names = Names::default();
    for (section, items) in sections.iter().zip(&items) {
        let names = match section.id {
            COMPONENT_IMPORT_SECTION => &mut names.imports,
            _ => &mut names.exports,
        };
        names.extend(items.iter().flatten().map(|item| item.name));
    }
    let mut renamed = Vec::new();
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&COMPONENT_HEADER);
    for (section, items) in sections.iter().zip(&items) {
        let Some(items) = items else {
            out.extend_from_slice(section.raw);
            continue;
        };
        let taken = match section.id {
            COMPONENT_IMPORT_SECTION => &names.imports,
            _ => &names.exports,
        };
        let payload = rename_items(items, taken, &mut renamed)?;
        out.push(section.id);
        write_u32(
            &mut out,
            u32::try_from(payload.len()).map_err(|_| Malformed)?,
        );
        out.extend_from_slice(&payload);
    }
    Ok((!renamed.is_empty()).then_some(Aliased {
        bytes: out,
        renamed,
    }))
}

/// The 0.3.0 name for a release-candidate WASI name, if it is one.
fn final_name(name: &str) -> Option<String> {
    let (interface, version) = name.rsplit_once('@')?;
    (name.starts_with("wasi:") && RELEASE_CANDIDATES.contains(&version))
        .then(|| format!("{interface}@{WASI_P3}"))
}

#[derive(Default)]
struct Names<'a> {
    imports: HashSet<&'a str>,
    exports: HashSet<&'a str>,
}

struct Section<'a> {
    id: u8,
    /// The whole section: id, size and payload.
    raw: &'a [u8],
    payload: &'a [u8],
}

fn sections(bytes: &[u8]) -> Result<Vec<Section<'_>>, Malformed> {
    let mut sections = Vec::new();
    let mut at = COMPONENT_HEADER.len();
    while at < bytes.len() {
        let start = at;
        let id = bytes[at];
        at += 1;
        let size = read_u32(bytes, &mut at)? as usize;
        let end = at
            .checked_add(size)
            .filter(|end| *end <= bytes.len())
            .ok_or(Malformed)?;
        sections.push(Section {
            id,
            raw: &bytes[start..end],
            payload: &bytes[at..end],
        });
        at = end;
    }
    Ok(sections)
}

/// One import or export: where its name sits inside the item.
struct Item<'a> {
    /// The byte before the name (0x00, 0x01 or 0x02).
    kind: u8,
    name: &'a str,
    /// Everything after the name up to the next item.
    rest: &'a [u8],
}

/// The items of the import or export section `section`. An item is `kind name rest`; `rest`
/// has a shape of its own per section, so items are delimited with wasmparser's readers, and
/// only the name prefix is parsed here.
fn items(payload: &[u8], section: u8) -> Result<Vec<Item<'_>>, Malformed> {
    let mut at = 0;
    let count = read_u32(payload, &mut at)?;
    let starts = item_offsets(payload, section, at, count)?;
    let mut items = Vec::with_capacity(starts.len());
    for (index, &start) in starts.iter().enumerate() {
        let end = starts.get(index + 1).copied().unwrap_or(payload.len());
        let mut cursor = start;
        let kind = *payload.get(cursor).ok_or(Malformed)?;
        cursor += 1;
        let len = read_u32(payload, &mut cursor)? as usize;
        let name_end = cursor
            .checked_add(len)
            .filter(|e| *e <= end)
            .ok_or(Malformed)?;
        let name = std::str::from_utf8(&payload[cursor..name_end]).map_err(|_| Malformed)?;
        items.push(Item {
            kind,
            name,
            rest: &payload[name_end..end],
        });
    }
    Ok(items)
}

/// Where each item of `section` starts (an import: name + type; an export: name + kind +
/// index + optional type). `first` is the offset after the item count.
fn item_offsets(
    payload: &[u8],
    section: u8,
    first: usize,
    count: u32,
) -> Result<Vec<usize>, Malformed> {
    let mut reader = wasmparser::BinaryReader::new(payload, 0);
    reader.read_var_u32().map_err(|_| Malformed)?;
    debug_assert_eq!(reader.original_position(), first);
    let mut offsets = Vec::with_capacity(count as usize);
    for _ in 0..count {
        offsets.push(reader.original_position());
        skip_item(&mut reader, section)?;
    }
    Ok(offsets)
}

fn skip_item(reader: &mut wasmparser::BinaryReader<'_>, section: u8) -> Result<(), Malformed> {
    let skipped = if section == COMPONENT_EXPORT_SECTION {
        reader.read::<wasmparser::ComponentExport<'_>>().map(drop)
    } else {
        reader.read::<wasmparser::ComponentImport<'_>>().map(drop)
    };
    skipped.map_err(|_| Malformed)
}

/// A section payload holding `items`, release-candidate names renamed unless their 0.3.0
/// name is `taken`.
fn rename_items(
    items: &[Item<'_>],
    taken: &HashSet<&str>,
    renamed: &mut Vec<String>,
) -> Result<Vec<u8>, Malformed> {
    let mut out = Vec::new();
    write_u32(&mut out, u32::try_from(items.len()).map_err(|_| Malformed)?);
    for item in items {
        let name = match final_name(item.name) {
            Some(name) if !taken.contains(name.as_str()) => {
                renamed.push(item.name.to_string());
                name
            }
            _ => item.name.to_string(),
        };
        out.push(item.kind);
        write_u32(&mut out, u32::try_from(name.len()).map_err(|_| Malformed)?);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(item.rest);
    }
    Ok(out)
}

fn read_u32(bytes: &[u8], at: &mut usize) -> Result<u32, Malformed> {
    let mut value: u64 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *bytes.get(*at).ok_or(Malformed)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return u32::try_from(value).map_err(|_| Malformed);
        }
    }
    Err(Malformed)
}

fn write_u32(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The top-level import and export names of a component, read back with wasmparser.
    fn names(bytes: &[u8]) -> (Vec<String>, Vec<String>) {
        let (mut imports, mut exports) = (Vec::new(), Vec::new());
        let mut depth = 0;
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            match payload.expect("the rewritten component parses") {
                wasmparser::Payload::Version { .. } => depth += 1,
                wasmparser::Payload::End(_) => depth -= 1,
                wasmparser::Payload::ComponentImportSection(section) if depth == 1 => {
                    for import in section {
                        imports.push(import.unwrap().name.name.to_string());
                    }
                }
                wasmparser::Payload::ComponentExportSection(section) if depth == 1 => {
                    for export in section {
                        exports.push(export.unwrap().name.name.to_string());
                    }
                }
                _ => {}
            }
        }
        (imports, exports)
    }

    #[test]
    fn release_candidates_become_0_3_0_unless_both_are_there() {
        let component = wat::parse_str(
            r#"(component
                (import "wasi:cli/environment@0.3.0-rc-2026-03-15" (instance))
                (import "wasi:cli/stdout@0.3.0-rc-2026-03-15" (instance))
                (import "wasi:cli/stdout@0.3.0" (instance))
                (import "spin:key-value/key-value@3.0.0" (instance))
                (import "wasi:otel/logs@0.2.0-rc.2" (instance))
                (component $inner (import "wasi:cli/environment@0.3.0-rc-2026-03-15" (instance)))
                (instance $handler)
                (export "wasi:http/handler@0.3.0-rc-2026-03-15" (instance $handler))
            )"#,
        )
        .unwrap();
        let aliased = alias_release_candidates(&component).unwrap().unwrap();
        assert_eq!(
            aliased.renamed,
            [
                "wasi:cli/environment@0.3.0-rc-2026-03-15",
                "wasi:http/handler@0.3.0-rc-2026-03-15"
            ]
        );
        let mut features = wasmparser::WasmFeatures::default();
        features.insert(wasmparser::WasmFeatures::COMPONENT_MODEL);
        wasmparser::Validator::new_with_features(features)
            .validate_all(&aliased.bytes)
            .expect("the rewritten component is valid");
        let (imports, exports) = names(&aliased.bytes);
        assert_eq!(
            imports,
            [
                "wasi:cli/environment@0.3.0",
                "wasi:cli/stdout@0.3.0-rc-2026-03-15",
                "wasi:cli/stdout@0.3.0",
                "spin:key-value/key-value@3.0.0",
                "wasi:otel/logs@0.2.0-rc.2",
            ]
        );
        assert_eq!(exports, ["wasi:http/handler@0.3.0"]);
    }

    #[test]
    fn nothing_to_rename_and_malformed_input() {
        let plain =
            wat::parse_str(r#"(component (import "wasi:cli/stdout@0.2.6" (instance)))"#).unwrap();
        assert!(alias_release_candidates(&plain).unwrap().is_none());
        assert!(alias_release_candidates(b"not wasm").unwrap().is_none());
        let mut truncated = plain.clone();
        truncated.truncate(plain.len() - 3);
        assert!(alias_release_candidates(&truncated).is_err());
        let module = wat::parse_str("(module)").unwrap();
        assert!(alias_release_candidates(&module).unwrap().is_none());
    }
}
