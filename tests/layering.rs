//! The modules form layers, each using only layers below it:
//! genome -> plan -> {cpu, gpu} -> engine -> {fitness, train} -> evolve -> benchmarks -> cli,
//! with shared utilities below (error, spec, fsio, stats, report; then data, dump). Each layer
//! owns its configuration section; `config` only re-exports them, above `evolve`.
//! This reads every `crate::MODULE` path outside test code and checks the arrows run one way,
//! and that the search (`evolve`) names no device.

use std::collections::BTreeMap;
use std::path::Path;

/// Rank of each top-level module: a module may only name modules of a lower rank.
const RANKS: &[(&str, u32)] = &[
    ("error", 0),
    ("spec", 0),
    ("fsio", 0),
    ("stats", 0),
    ("report", 0),
    ("genome", 1),
    ("plan", 2),
    ("cpu", 3),
    ("gpu", 4),
    ("engine", 5),
    ("data", 5),
    ("fitness", 6),
    ("train", 6),
    ("dump", 6),
    ("evolve", 7),
    ("export", 7),
    ("benchmarks", 8),
    ("config", 8),
    ("cli", 9),
];

fn rank(m: &str) -> Option<u32> {
    RANKS.iter().find(|(n, _)| *n == m).map(|&(_, r)| r)
}

fn visit(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            visit(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments and without its `#[cfg(test)]` part.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn module_dependencies_run_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    visit(&src, &mut files);
    let mut bad: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen = 0;
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = top.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let own = rank(&module).unwrap_or_else(|| panic!("module `{module}` has no rank"));
        let text = code(&std::fs::read_to_string(f).unwrap());
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            let Some(r) = rank(&name) else { continue };
            seen += 1;
            if name != module && r >= own {
                bad.entry(format!("{module} -> {name}"))
                    .or_default()
                    .push(rel.display().to_string());
            }
        }
    }
    assert!(
        seen > 100,
        "only {seen} crate paths found: is the scan broken?"
    );
    assert!(bad.is_empty(), "arrows against the layering: {bad:#?}");
}

/// The search sees scores, never devices: `evolve` names no engine, CPU or GPU module (the
/// callers hand it evaluators made on their device).
#[test]
fn the_search_names_no_device() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/evolve");
    let mut files = Vec::new();
    visit(&dir, &mut files);
    assert!(files.len() > 3, "only {} files in src/evolve", files.len());
    let mut bad = Vec::new();
    for f in &files {
        let text = code(&std::fs::read_to_string(f).unwrap());
        for m in ["crate::engine", "crate::cpu", "crate::gpu"] {
            if text.contains(m) {
                bad.push(format!("{} names {m}", f.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// The engines are internal to the crate's users: without the `internals` feature (which only
/// the crate's own tests and benchmarks turn on) `cpu` and `gpu` are `pub(crate)`, and the
/// programs that use the library as its users do (the Python bindings, the examples) name
/// neither.
#[test]
fn the_engines_are_internal() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    for m in ["cpu", "gpu"] {
        let private = format!("#[cfg(not(feature = \"internals\"))]\npub(crate) mod {m};");
        assert!(lib.contains(&private), "src/lib.rs lacks `{private}`");
        for (i, _) in lib.match_indices(&format!("pub mod {m};")) {
            let before: Vec<&str> = lib[..i].lines().rev().take(2).collect();
            assert!(
                before
                    .iter()
                    .any(|l| l.trim() == "#[cfg(feature = \"internals\")]"),
                "`pub mod {m};` in src/lib.rs outside the internals feature"
            );
        }
    }
    let mut files = Vec::new();
    visit(&root.join("python/src"), &mut files);
    visit(&root.join("examples"), &mut files);
    assert!(files.len() >= 2, "no bindings or examples found");
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for m in ["msenas::cpu", "msenas::gpu"] {
            if text.contains(m) {
                bad.push(format!("{} names {m}", f.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}
