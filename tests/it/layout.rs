//! The layout of src/ (issue 10): imports point one way, between files and between the
//! pipeline's folders. Every `crate::`, `super::` and `self::` path outside comments and test
//! modules is an edge from its file to the module it names; a cycle fails with its members.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every library file by module path (`spec::events`; a `mod.rs` is its folder's module).
fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() && name != "bin" {
            let mut p = prefix.to_vec();
            p.push(name);
            modules(&path, &p, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            // Unit tests kept beside a file (`#[path = "x_tests.rs"] mod tests`) are not the library.
            && !name.ends_with("tests")
        {
            let mut p = prefix.to_vec();
            if !matches!(name.as_str(), "mod" | "lib" | "main") {
                p.push(name);
            }
            out.insert(p.join("::"), path);
        }
    }
}

/// The longest known module a path names, from module `at` (its file is `mod.rs` or not).
fn resolve(
    at: &str,
    is_mod: bool,
    path: &str,
    known: &BTreeMap<String, PathBuf>,
) -> Option<String> {
    let segs: Vec<&str> = path.split("::").collect();
    let mut base: Vec<&str> = at.split("::").filter(|s| !s.is_empty()).collect();
    let rest = match segs[0] {
        "crate" => {
            base.clear();
            &segs[1..]
        }
        "self" => {
            if !is_mod {
                base.pop();
            }
            &segs[1..]
        }
        "super" => {
            if !is_mod {
                base.pop();
            }
            let ups = segs.iter().take_while(|s| **s == "super").count();
            for _ in 0..ups {
                base.pop();
            }
            &segs[ups..]
        }
        _ => return None,
    };
    let full: Vec<&str> = base.into_iter().chain(rest.iter().copied()).collect();
    (1..=full.len())
        .rev()
        .map(|i| full[..i].join("::"))
        .find(|m| known.contains_key(m))
}

fn edges(known: &BTreeMap<String, PathBuf>) -> Graph {
    let mut graph = Graph::new();
    for (module, path) in known {
        let text = std::fs::read_to_string(path).expect("read source");
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        let is_mod = path.file_name().is_some_and(|f| f == "mod.rs");
        let deps = graph.entry(module.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            // `use crate::a::{b, c::d}` names a::b and a::c too.
            let expanded = line
                .replace("::{", "::")
                .replace([',', '}', '{', ';', '(', ')', '&', '<', '>'], " ");
            for word in expanded.split_whitespace() {
                let word = word.trim_end_matches(':');
                if !(word.starts_with("crate::")
                    || word.starts_with("super::")
                    || word.starts_with("self::"))
                {
                    continue;
                }
                if let Some(target) = resolve(module, is_mod, word, known)
                    && &target != module
                    // A module reaching into its own parent's declarations is not an edge back.
                    && !module.starts_with(&format!("{target}::"))
                {
                    deps.insert(target);
                }
            }
        }
    }
    graph
}

/// The strongly connected parts of more than one module (Tarjan).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(w: &mut Walk<'g>, v: &'g str) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        for u in w.graph.get(v).into_iter().flatten() {
            if !w.index.contains_key(u.as_str()) {
                visit(w, u);
                let l = w.low[u.as_str()].min(w.low[v]);
                w.low.insert(v, l);
            } else if w.stack.contains(&u.as_str()) {
                let l = w.index[u.as_str()].min(w.low[v]);
                w.low.insert(v, l);
            }
        }
        if w.low[v] == w.index[v] {
            let at = w.stack.iter().rposition(|x| *x == v).unwrap();
            let part: Vec<String> = w.stack.drain(at..).map(str::to_string).collect();
            if part.len() > 1 {
                w.found.push(part);
            }
        }
    }
    let mut w = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !w.index.contains_key(v.as_str()) {
            visit(&mut w, v);
        }
    }
    w.found
}

#[test]
fn imports_point_one_way_between_files_and_folders() {
    let mut known = BTreeMap::new();
    modules(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &[],
        &mut known,
    );
    let files = edges(&known);
    assert!(
        files.values().map(BTreeSet::len).sum::<usize>() > 100,
        "the scan found no imports"
    );
    let mut folders = Graph::new();
    for (from, to) in &files {
        let top = |m: &str| m.split("::").next().unwrap_or("").to_string();
        for t in to.iter().filter(|t| top(t) != top(from)) {
            folders.entry(top(from)).or_default().insert(top(t));
        }
    }
    assert_eq!(
        cycles(&files),
        Vec::<Vec<String>>::new(),
        "files import each other"
    );
    assert_eq!(
        cycles(&folders),
        Vec::<Vec<String>>::new(),
        "folders import each other"
    );
}

/// The check can fail: a cycle made by hand is found.
#[test]
fn a_cycle_is_found() {
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    g.entry("d".into()).or_default().insert("a".into());
    let found = cycles(&g);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].iter().collect::<BTreeSet<_>>().len(), 3);
}
