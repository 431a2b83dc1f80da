//! The module layering of `src/lib.rs`'s module map: a module imports only
//! modules listed above it (no upward arrow, hence no circle). Reads the
//! sources; comments and doc comments are ignored.

use std::path::{Path, PathBuf};

/// Lower layers first, as in `src/lib.rs`.
const LAYERS: [&str; 17] = [
    "os_error", "watch", "progress", "engine", "data", "dist", "eval", "loss", "plot", "model",
    "store", "infer", "train", "serve", "sweep", "bench", "cli",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The `crate::X` modules `path`'s code (not its comments) names.
fn imports(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
    }
    found
}

#[test]
fn no_module_imports_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let mut upward = Vec::new();
    for (level, module) in LAYERS.iter().enumerate() {
        assert!(
            lib.contains(&format!("pub mod {module};")) && lib.contains(&format!("[`{module}`]")),
            "src/lib.rs must declare `{module}` and list it in its module map"
        );
        let mut files = Vec::new();
        let dir = src.join(module);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        } else {
            files.push(src.join(format!("{module}.rs")));
        }
        for f in files {
            for used in imports(&f) {
                if let Some(l) = LAYERS.iter().position(|m| *m == used)
                    && l > level
                {
                    upward.push(format!("{} uses crate::{used}", f.display()));
                }
            }
        }
    }
    let declared = lib.matches("\npub mod ").count();
    assert_eq!(
        declared,
        LAYERS.len(),
        "every module of src/lib.rs is layered here"
    );
    assert!(upward.is_empty(), "upward imports:\n{}", upward.join("\n"));
}
