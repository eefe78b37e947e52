//! The workspace's layout rules, checked by the unit stage: no source file over 600 lines,
//! and no import cycle between modules (at any level: between a crate's top modules, or
//! between the submodules of one module).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Longest source file, in lines.
pub const MAX_LINES: usize = 600;

/// Every Rust source file of the workspace's crates.
fn sources(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                if !name.starts_with('.')
                    && !["target", "lab-cache", "data"].contains(&name.as_str())
                {
                    dirs.push(p);
                }
            } else if name.ends_with(".rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A crate (or a binary's or test's own crate) and its modules: each file's module path.
#[derive(Debug, Default)]
struct Crate {
    /// Module path of each file, and the file's text.
    files: Vec<(Vec<String>, String)>,
}

/// The crate root a file belongs to and its module path under it: `src/lib.rs` is `[]`,
/// `src/a/b.rs` and `src/a/b/mod.rs` are `[a, b]`; `src/bin/x/...` and `tests/x/...` are
/// crates of their own.
fn module_of(file: &Path) -> Option<(PathBuf, Vec<String>)> {
    let comps: Vec<String> = file
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let i = comps.iter().rposition(|c| c == "src" || c == "tests")?;
    let mut rest: Vec<String> = comps[i + 1..].to_vec();
    let mut root: PathBuf = comps[..=i].iter().collect();
    if comps[i] == "src" && rest.first().is_some_and(|c| c == "bin") && rest.len() > 2 {
        root = root.join("bin").join(&rest[1]);
        rest.drain(..2);
    } else if comps[i] == "tests" && rest.len() > 1 {
        root = root.join(&rest[0]);
        rest.drain(..1);
    } else if comps[i] == "tests" || (comps[i] == "src" && rest.first().is_some_and(|c| c == "bin"))
    {
        // A single-file test or binary: a crate of one module.
        return Some((file.to_path_buf(), vec![]));
    }
    let last = rest.pop()?;
    match last.as_str() {
        "lib.rs" | "main.rs" | "mod.rs" => {}
        other => rest.push(other.trim_end_matches(".rs").to_string()),
    }
    Some((root, rest))
}

/// The `crate::…` and `super::…` paths a file names, as absolute module paths (up to the
/// first segment that is not a module of the crate).
fn references(text: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    // Expands a use tree at `i` with `prefix`, pushing every full path.
    fn tree(text: &str, i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        let b = text.as_bytes();
        let skip = |i: &mut usize| {
            while *i < b.len() && (b[*i] as char).is_whitespace() {
                *i += 1;
            }
        };
        skip(i);
        if *i < b.len() && b[*i] == b'{' {
            *i += 1;
            loop {
                skip(i);
                if *i >= b.len() || b[*i] == b'}' {
                    *i += 1;
                    break;
                }
                tree(text, i, prefix.clone(), out);
                skip(i);
                if *i < b.len() && b[*i] == b',' {
                    *i += 1;
                }
            }
            return;
        }
        let mut path = prefix;
        loop {
            let s = *i;
            while *i < b.len() && (b[*i].is_ascii_alphanumeric() || b[*i] == b'_' || b[*i] == b'*')
            {
                *i += 1;
            }
            path.push(text[s..*i].to_string());
            if b[*i..].starts_with(b"::") {
                *i += 2;
                if *i < b.len() && b[*i] == b'{' {
                    tree(text, i, path, out);
                    return;
                }
            } else {
                break;
            }
        }
        out.push(path);
    }
    let mut i = 0;
    while i < bytes.len() {
        let at_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let (base, len): (Vec<String>, usize) = if at_word && bytes[i..].starts_with(b"crate::") {
            (vec![], 7)
        } else if at_word && bytes[i..].starts_with(b"super::") {
            // `super` is the module's parent (for a.rs and a/mod.rs alike).
            let up = module.len().saturating_sub(1);
            (module[..up].to_vec(), 7)
        } else {
            i += 1;
            continue;
        };
        i += len;
        tree(text, &mut i, base, &mut out);
    }
    out
}

/// The cycles among the submodules of each module: `(parent, cycle)`.
fn cycles(krate: &Crate) -> Vec<(Vec<String>, Vec<String>)> {
    let modules: BTreeSet<Vec<String>> = krate.files.iter().map(|(m, _)| m.clone()).collect();
    // edges[parent][a] = {b}: a file under parent::a names something under parent::b.
    let mut edges: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (m, text) in &krate.files {
        for r in references(text, m) {
            let common = m.iter().zip(&r).take_while(|(a, b)| a == b).count();
            if common >= m.len() || common >= r.len() {
                continue;
            }
            let parent = m[..common].to_vec();
            let mut target = parent.clone();
            target.push(r[common].clone());
            if !modules.contains(&target) {
                continue; // an item of the parent module, not a submodule
            }
            edges
                .entry(parent)
                .or_default()
                .entry(m[common].clone())
                .or_default()
                .insert(r[common].clone());
        }
    }
    let mut found = Vec::new();
    for (parent, g) in &edges {
        // Depth-first search for a back edge.
        fn visit(
            n: &str,
            g: &BTreeMap<String, BTreeSet<String>>,
            stack: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(p) = stack.iter().position(|s| s == n) {
                let mut c = stack[p..].to_vec();
                c.push(n.to_string());
                return Some(c);
            }
            if done.contains(n) {
                return None;
            }
            stack.push(n.to_string());
            for m in g.get(n).into_iter().flatten() {
                if let Some(c) = visit(m, g, stack, done) {
                    return Some(c);
                }
            }
            stack.pop();
            done.insert(n.to_string());
            None
        }
        let mut done = BTreeSet::new();
        for n in g.keys() {
            if let Some(c) = visit(n, g, &mut Vec::new(), &mut done) {
                found.push((parent.clone(), c));
                break;
            }
        }
    }
    found
}

/// Every crate of the workspace under `root`, by crate root.
fn crates(root: &Path) -> BTreeMap<PathBuf, Crate> {
    let mut out: BTreeMap<PathBuf, Crate> = BTreeMap::new();
    for f in sources(root) {
        if let (Some((krate, module)), Ok(text)) = (module_of(&f), std::fs::read_to_string(&f)) {
            out.entry(krate).or_default().files.push((module, text));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_source_file_is_over_the_limit() {
        let long: Vec<String> = sources(&crate::root())
            .into_iter()
            .filter_map(|f| {
                let n = std::fs::read_to_string(&f).ok()?.lines().count();
                (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.display()))
            })
            .collect();
        assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
    }

    #[test]
    fn no_module_imports_one_that_imports_it() {
        let all = crates(&crate::root());
        assert!(all.len() >= 8, "crates found: {:?}", all.keys());
        let bad: Vec<String> = all
            .iter()
            .flat_map(|(root, k)| {
                cycles(k).into_iter().map(move |(parent, c)| {
                    format!(
                        "{}: in `{}`: {}",
                        root.display(),
                        parent.join("::"),
                        c.join(" -> ")
                    )
                })
            })
            .collect();
        assert!(bad.is_empty(), "import cycles: {bad:#?}");
    }

    #[test]
    fn a_cycle_is_found_at_any_level() {
        let file = |m: &[&str], t: &str| (m.iter().map(|s| s.to_string()).collect(), t.into());
        let k = Crate {
            files: vec![
                file(&[], "mod a; mod b;"),
                file(&["a"], "use crate::b::X;"),
                file(&["b"], "mod c; mod d;"),
                file(&["b", "c"], "use super::d::Y;"),
                file(&["b", "d"], "use crate::{a, b::c::Z};"),
            ],
        };
        let c = cycles(&k);
        // b::d -> a is fine (a never names b::d); b::c <-> b::d is a cycle inside b, and
        // a -> b -> a across the top (b::d names a).
        assert!(
            c.iter()
                .any(|(p, c)| p.is_empty() && c.contains(&"a".to_string())),
            "{c:?}"
        );
        assert!(
            c.iter()
                .any(|(p, c)| *p == ["b"] && c.contains(&"c".to_string())),
            "{c:?}"
        );
        let fine = Crate {
            files: vec![
                file(&[], "mod a; mod b;"),
                file(&["a"], "use crate::b::{X, Y};"),
                file(&["b"], "pub struct X;"),
            ],
        };
        assert!(cycles(&fine).is_empty());
    }

    #[test]
    fn files_map_to_their_crate_and_module() {
        let m = |p: &str| module_of(Path::new(p)).map(|(r, m)| (r.display().to_string(), m));
        assert_eq!(m("/w/a/src/lib.rs"), Some(("/w/a/src".into(), vec![])));
        assert_eq!(
            m("/w/a/src/x/mod.rs"),
            Some(("/w/a/src".into(), vec!["x".to_string()]))
        );
        assert_eq!(
            m("/w/a/src/x/y.rs"),
            Some(("/w/a/src".into(), vec!["x".to_string(), "y".to_string()]))
        );
        assert_eq!(
            m("/w/a/src/bin/t/main.rs"),
            Some(("/w/a/src/bin/t".into(), vec![]))
        );
        assert_eq!(
            m("/w/a/tests/live/run.rs"),
            Some(("/w/a/tests/live".into(), vec!["run".to_string()]))
        );
    }
}
