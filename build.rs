//! Build step for the WGSL kernels.
//!
//! Every `shaders/**/*.wgsl` outside `shaders/shared/` is one kernel family. Shared snippets are
//! spliced in by a one-line preprocessor (`//! import shared/x.wgsl`, naga has no imports), the
//! result is parsed and validated with naga, and a kernel table (one row per compute entry point:
//! name, workgroup size, bindings) is generated into `OUT_DIR/kernels.rs` together with the
//! spliced sources, which `src/gpu/kernels/table.rs` includes. All broken shaders are reported
//! at once, so one build shows every mistake.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

const IMPORT: &str = "//! import ";

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let shader_dir = root.join("shaders");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=shaders");

    let mut files = Vec::new();
    collect_wgsl(&shader_dir, &mut files);
    files.sort();

    let mut errors = Vec::new();
    let mut kernels = Vec::new(); // (file stem, entry, wg size, wg bytes, bindings)
    let mut sources = Vec::new(); // (file stem, spliced path)
    for path in &files {
        let rel = path.strip_prefix(&shader_dir).unwrap();
        if rel.starts_with("shared") {
            continue;
        }
        let stem = rel
            .with_extension("")
            .to_string_lossy()
            .replace(['/', '\\'], "_");
        let mut seen = BTreeSet::new();
        let source = match splice(&shader_dir, path, &mut seen) {
            Ok(s) => s,
            Err(e) => {
                errors.push(format!("{}: {e}", rel.display()));
                continue;
            }
        };
        let module = match naga::front::wgsl::parse_str(&source) {
            Ok(m) => m,
            Err(e) => {
                errors.push(e.emit_to_string_with_path(&source, &rel.to_string_lossy()));
                continue;
            }
        };
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        );
        let info = match validator.validate(&module) {
            Ok(i) => i,
            Err(e) => {
                errors.push(e.emit_to_string_with_path(&source, &rel.to_string_lossy()));
                continue;
            }
        };
        let mut layouter = naga::proc::Layouter::default();
        layouter
            .update(module.to_ctx())
            .expect("layout of a validated module");
        let mut file_ok = true;
        for (i, ep) in module.entry_points.iter().enumerate() {
            if ep.stage != naga::ShaderStage::Compute {
                errors.push(format!(
                    "{}: entry point `{}` is not a compute shader",
                    rel.display(),
                    ep.name
                ));
                file_ok = false;
                continue;
            }
            let fi = info.get_entry_point(i);
            let mut bindings = Vec::new();
            let mut workgroup_bytes = 0u32;
            for (h, var) in module.global_variables.iter() {
                if fi[h].is_empty() {
                    continue;
                }
                if var.space == naga::AddressSpace::WorkGroup {
                    workgroup_bytes += layouter[var.ty].size;
                }
                let Some(rb) = &var.binding else { continue };
                if rb.group != 0 {
                    errors.push(format!(
                        "{}: `{}` uses group {}; kernels bind everything in group 0",
                        rel.display(),
                        ep.name,
                        rb.group
                    ));
                    file_ok = false;
                }
                let kind = match var.space {
                    naga::AddressSpace::Uniform => "Uniform",
                    naga::AddressSpace::Storage { access } => {
                        if access.contains(naga::StorageAccess::STORE) {
                            "StorageReadWrite"
                        } else {
                            "StorageRead"
                        }
                    }
                    other => {
                        errors.push(format!(
                            "{}: `{}` binds {:?}; kernels use only uniform and storage buffers",
                            rel.display(),
                            ep.name,
                            other
                        ));
                        file_ok = false;
                        continue;
                    }
                };
                let name = var.name.clone().unwrap_or_default();
                let size = if kind == "Uniform" {
                    layouter[var.ty].size
                } else {
                    0
                };
                bindings.push((rb.binding, kind, name, size));
            }
            bindings.sort();
            kernels.push((
                stem.clone(),
                ep.name.clone(),
                ep.workgroup_size,
                workgroup_bytes,
                bindings,
            ));
        }
        if file_ok {
            let out = out_dir.join(format!("{stem}.wgsl"));
            fs::write(&out, &source).unwrap();
            sources.push((stem.clone(), out));
        }
    }
    if !errors.is_empty() {
        let n = errors.len();
        panic!("{n} broken shader(s):\n\n{}", errors.join("\n\n"));
    }

    let mut gen = String::new();
    gen.push_str("// @generated by build.rs from shaders/: do not edit.\n\n");
    gen.push_str("/// Every kernel family's WGSL, shared snippets spliced in.\n");
    gen.push_str("pub static SHADER_FILES: &[ShaderFile] = &[\n");
    for (stem, out) in &sources {
        writeln!(
            gen,
            "    ShaderFile {{ name: {stem:?}, source: include_str!({:?}) }},",
            out.display()
        )
        .unwrap();
    }
    gen.push_str("];\n\n");
    gen.push_str("/// One variant per compute entry point, named `<file><Entry>` in camel case.\n");
    gen.push_str("#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]\npub enum KernelId {\n");
    for (stem, entry, _, _, _) in &kernels {
        writeln!(gen, "    {},", camel(&format!("{stem}_{entry}"))).unwrap();
    }
    gen.push_str("}\n\n");
    gen.push_str("impl KernelId {\n    pub const ALL: &'static [KernelId] = &[\n");
    for (stem, entry, _, _, _) in &kernels {
        writeln!(
            gen,
            "        KernelId::{},",
            camel(&format!("{stem}_{entry}"))
        )
        .unwrap();
    }
    gen.push_str("    ];\n}\n\n");
    gen.push_str("/// The kernel table, indexed by `KernelId as usize`.\npub static KERNELS: &[KernelInfo] = &[\n");
    for (stem, entry, wg, wg_bytes, bindings) in &kernels {
        let file_index = sources.iter().position(|(s, _)| s == stem).unwrap();
        write!(
            gen,
            "    KernelInfo {{ file: {stem:?}, file_index: {file_index}, entry: {entry:?}, workgroup_size: [{}, {}, {}], workgroup_bytes: {wg_bytes}, bindings: &[",
            wg[0], wg[1], wg[2]
        )
        .unwrap();
        for (b, kind, name, size) in bindings {
            write!(gen, "Binding {{ binding: {b}, kind: BindingKind::{kind}, name: {name:?}, size: {size} }}, ").unwrap();
        }
        gen.push_str("] },\n");
    }
    gen.push_str("];\n");
    fs::write(out_dir.join("kernels.rs"), gen).unwrap();
}

fn collect_wgsl(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for entry in rd.flatten() {
        let p = entry.path();
        if p.is_dir() {
            collect_wgsl(&p, out);
        } else if p.extension().is_some_and(|e| e == "wgsl") {
            out.push(p);
        }
    }
}

/// Replace each `//! import shared/x.wgsl` line with that file (recursively, each file once).
fn splice(root: &Path, path: &Path, seen: &mut BTreeSet<PathBuf>) -> Result<String, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = String::new();
    for (n, line) in text.lines().enumerate() {
        if let Some(rest) = line.trim_start().strip_prefix(IMPORT) {
            let target = root.join(rest.trim());
            if !target.is_file() {
                return Err(format!(
                    "line {}: import `{}` not found under shaders/",
                    n + 1,
                    rest.trim()
                ));
            }
            if seen.insert(target.clone()) {
                writeln!(out, "// ---- begin {} ----", rest.trim()).unwrap();
                out.push_str(&splice(root, &target, seen)?);
                writeln!(out, "// ---- end {} ----", rest.trim()).unwrap();
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

fn camel(s: &str) -> String {
    s.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            let first = c.next().unwrap().to_ascii_uppercase();
            first.to_string() + c.as_str()
        })
        .collect()
}
