//! No two modules of a crate import each other, directly or through others.
//!
//! For every crate of the workspace (each member's `src/lib.rs` and `src/main.rs`, and every
//! `[[bin]]` with its own `path`), this reads the module tree from the `mod` declarations and
//! every path a file names — `use` trees and `crate::…` / `super::…` paths in code, not in
//! comments or strings — and builds, for each module, the graph of its child modules: A → B
//! when anything inside A names anything inside B. A parent and its children may name each
//! other (a registry names the entries its children define, a child uses its parent's types);
//! siblings must not form a circle. A name the crate root re-exports (`crate::Trainer`) counts
//! as the module it comes from. Any circle fails the test, shown with its path and, for each
//! step, the line that makes it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Crates whose known circle is being removed elsewhere; each must still have a circle (the
/// test says so once it is gone, so the entry does not outlive it).
/// None today (the coordinator's lease/batch/store circle went with issue 18 part 1).
const CRATES_WITH_KNOWN_CYCLES: &[&str] = &[];

#[test]
fn no_module_of_any_crate_imports_itself_through_others() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let crates = workspace_crates(root);
    assert!(
        crates.iter().any(|(name, _)| name == "trainer-core"),
        "crates found: {crates:?}"
    );
    let mut failures = Vec::new();
    for (name, root_file) in &crates {
        let cycles = module_cycles(root_file);
        let known = CRATES_WITH_KNOWN_CYCLES.contains(&name.as_str());
        if known && cycles.is_empty() {
            failures.push(format!(
                "{name} has no import cycle any more: remove it from CRATES_WITH_KNOWN_CYCLES"
            ));
        } else if !known {
            failures.extend(cycles.iter().map(|c| format!("{name}: {c}")));
        }
    }
    for known in CRATES_WITH_KNOWN_CYCLES {
        assert!(
            crates.iter().any(|(name, _)| name == known),
            "{known} is not a crate"
        );
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn a_cycle_is_found_at_any_depth_and_shown_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let write = |file: &str, text: &str| {
        let path = dir.path().join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    };
    write(
        "lib.rs",
        "pub mod a;\nmod b;\nmod c;\npub use c::Thing;\nmacro_rules! m { () => { $crate::a::f() } }\n",
    );
    write(
        "a.rs",
        "//! Names crate::c::Thing in a comment only.\nuse crate::b::{self, X};\n\
         const S: &str = \"crate::c\";\npub fn f() {}\n",
    );
    write(
        "b.rs",
        "pub struct X;\nfn g() -> char { let _ = '\"'; crate::Thing::new(); 'x' }\n\
         #[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
    );
    write(
        "c/mod.rs",
        "mod inner;\nmod other;\npub struct Thing;\nimpl Thing { pub fn new() {} }\n",
    );
    write("c/inner.rs", "use super::other::Y;\n");
    write("c/other.rs", "pub struct Y;\n");
    // Acyclic so far: a → b → c (through the root's re-export); c's children are fine.
    assert_eq!(
        module_cycles(&dir.path().join("lib.rs")),
        Vec::<String>::new()
    );

    // Close the circle from a nested module through `super::super`.
    write(
        "c/inner.rs",
        "use super::other::Y;\nfn h() { super::super::a::f() }\n",
    );
    let cycles = module_cycles(&dir.path().join("lib.rs"));
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(cycles[0].starts_with("a → b → c → a\n"), "{}", cycles[0]);
    assert!(cycles[0].contains("a.rs:2 crate::b"), "{}", cycles[0]);
    assert!(cycles[0].contains("b.rs:2 crate::Thing"), "{}", cycles[0]);
    assert!(
        cycles[0].contains("inner.rs:2 super::super::a::f"),
        "{}",
        cycles[0]
    );

    // A circle between siblings below the root.
    write("c/inner.rs", "use super::other::Y;\n");
    write(
        "c/other.rs",
        "pub struct Y;\nuse self::super::inner as _;\n",
    );
    let cycles = module_cycles(&dir.path().join("lib.rs"));
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(
        cycles[0].starts_with("c::inner → c::other → c::inner\n"),
        "{}",
        cycles[0]
    );
}

// ---- the workspace's crates ----

/// (name, root file) of every crate: a member's `src/lib.rs` (named after its directory, the
/// workspace root's after its package), its `src/main.rs` (the same name, plus ` (bin)` when
/// there is a lib), and each `[[bin]]` whose `path` is given (named after the bin).
fn workspace_crates(root: &Path) -> Vec<(String, PathBuf)> {
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members = quoted_list(&manifest, "members");
    let mut crates = Vec::new();
    for member in members {
        let dir = root.join(&member);
        let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let name = if member == "." {
            quoted_value(&manifest, "name").unwrap()
        } else {
            member.clone()
        };
        let lib = dir.join("src/lib.rs");
        let has_lib = lib.exists();
        if has_lib {
            crates.push((name.clone(), lib));
        }
        let main = dir.join("src/main.rs");
        if main.exists() {
            let label = if has_lib {
                format!("{name} (bin)")
            } else {
                name.clone()
            };
            crates.push((label, main));
        }
        for section in manifest.split("[[bin]]").skip(1) {
            let section = section.split("\n[").next().unwrap();
            if let (Some(bin), Some(path)) =
                (quoted_value(section, "name"), quoted_value(section, "path"))
                && path != "src/main.rs"
            {
                crates.push((bin, dir.join(path)));
            }
        }
    }
    crates
}

/// The strings of `key = [ "a", "b" ]` in a TOML text.
fn quoted_list(toml: &str, key: &str) -> Vec<String> {
    let start = toml
        .lines()
        .position(|l| l.trim_start().starts_with(&format!("{key} =")))
        .unwrap_or_else(|| panic!("no {key} in Cargo.toml"));
    let text: String = toml.lines().skip(start).collect::<Vec<_>>().join("\n");
    let list = &text[text.find('[').unwrap() + 1..text.find(']').unwrap()];
    list.split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The string of the first `key = "value"` line of a TOML text.
fn quoted_value(toml: &str, key: &str) -> Option<String> {
    toml.lines().find_map(|l| {
        let rest = l
            .trim_start()
            .strip_prefix(key)?
            .trim_start()
            .strip_prefix('=')?;
        Some(rest.trim().trim_matches('"').to_string())
    })
}

// ---- the module graph ----

/// A path one file names, made absolute (segments below the crate root).
struct Named {
    target: Vec<String>,
    /// Where, for the report: `file:line text`.
    place: String,
}

/// A module loaded from its own file, with what it names.
struct FileModule {
    path: Vec<String>,
    named: Vec<Named>,
    /// Names the module re-exports (`pub use x::Y` → Y), to the path they stand for.
    reexports: BTreeMap<String, Vec<String>>,
}

/// Every circle of the crate whose root file is `root`, one string each: the path
/// (`a → b → a`), then one line per step with the place that makes it.
fn module_cycles(root: &Path) -> Vec<String> {
    let mut modules = Vec::new();
    load(root, Vec::new(), true, &mut modules);
    let known: BTreeSet<Vec<String>> = modules.iter().map(|m| m.path.clone()).collect();
    let root_reexports = modules[0].reexports.clone();

    // For each parent, the edges between its children: (from, to) → first place.
    let mut levels: BTreeMap<Vec<String>, BTreeMap<(String, String), String>> = BTreeMap::new();
    for m in &modules {
        for n in &m.named {
            let target = module_of(&n.target, &known, &root_reexports);
            let common = m
                .path
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            // Siblings below the common ancestor; a module naming an ancestor or a
            // descendant of itself is a parent–child relation, allowed.
            if common < m.path.len() && common < target.len() {
                levels
                    .entry(m.path[..common].to_vec())
                    .or_default()
                    .entry((m.path[common].clone(), target[common].clone()))
                    .or_insert_with(|| n.place.clone());
            }
        }
    }
    let mut cycles = Vec::new();
    for (parent, edges) in &levels {
        let prefix = |name: &str| {
            let mut p = parent.clone();
            p.push(name.to_string());
            p.join("::")
        };
        for cycle in find_cycles(edges) {
            let mut text = cycle
                .iter()
                .map(|n| prefix(n))
                .collect::<Vec<_>>()
                .join(" → ");
            for step in cycle.windows(2) {
                let place = &edges[&(step[0].clone(), step[1].clone())];
                text.push_str(&format!(
                    "\n    {} → {}: {place}",
                    prefix(&step[0]),
                    prefix(&step[1])
                ));
            }
            cycles.push(text);
        }
    }
    cycles
}

/// The module a named path lies in: its longest prefix that is a module, or, for a name the
/// root re-exports, the module that name comes from.
fn module_of(
    target: &[String],
    known: &BTreeSet<Vec<String>>,
    root_reexports: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    if let Some(first) = target.first()
        && !known.contains(&vec![first.clone()])
        && let Some(source) = root_reexports.get(first)
    {
        let mut full = source.clone();
        full.extend(target[1..].iter().cloned());
        return module_of(&full, known, &BTreeMap::new());
    }
    (0..=target.len())
        .rev()
        .map(|k| target[..k].to_vec())
        .find(|p| known.contains(p))
        .unwrap_or_default()
}

/// One circle per strongly connected component of more than one node, found by walking
/// from its smallest node; each circle starts and ends with that node.
fn find_cycles(edges: &BTreeMap<(String, String), String>) -> Vec<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        next.entry(a).or_default().push(b);
    }
    let reach = |from: &str| {
        let mut seen = BTreeSet::from([from.to_string()]);
        let mut todo = vec![from.to_string()];
        while let Some(n) = todo.pop() {
            for m in next.get(n.as_str()).into_iter().flatten() {
                if seen.insert(m.to_string()) {
                    todo.push(m.to_string());
                }
            }
        }
        seen
    };
    let mut done = BTreeSet::new();
    let mut cycles = Vec::new();
    for start in next.keys() {
        if done.contains(*start) {
            continue;
        }
        // The component of `start`: what it reaches that reaches it back.
        let component: BTreeSet<String> = reach(start)
            .into_iter()
            .filter(|n| reach(n).contains(*start))
            .collect();
        done.extend(component.iter().cloned());
        if component.len() < 2 {
            continue;
        }
        // Shortest way around: breadth first from `start` back to it, inside the component.
        let mut came_from: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.to_string()]);
        'search: while let Some(n) = queue.pop_front() {
            for m in next.get(n.as_str()).into_iter().flatten() {
                if *m == *start {
                    came_from.insert(format!("{m}\0end"), n.clone());
                    break 'search;
                }
                if component.contains(*m) && !came_from.contains_key(*m) {
                    came_from.insert(m.to_string(), n.clone());
                    queue.push_back(m.to_string());
                }
            }
        }
        let mut back = Vec::new();
        let mut at = came_from[&format!("{start}\0end")].clone();
        while at != *start {
            back.push(at.clone());
            at = came_from[&at].clone();
        }
        back.reverse();
        let mut path = vec![start.to_string()];
        path.extend(back);
        path.push(start.to_string());
        cycles.push(path);
    }
    cycles
}

// ---- reading one file ----

/// Reads the module in `file` at `path` and, recursively, the modules it declares.
/// `mod_rs`: its children live beside it (`lib.rs`, `main.rs`, `mod.rs`, a `#[path]` file),
/// not in a directory named after it.
fn load(file: &Path, path: Vec<String>, mod_rs: bool, out: &mut Vec<FileModule>) {
    let source = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    // A module's unit tests (`#[cfg(test)] mod tests`, at the end by convention) may use the
    // modules above it, as any test does: they are not part of the crate's import graph.
    let source = match source.find("#[cfg(test)]\nmod tests") {
        Some(at) => &source[..at],
        None => &source[..],
    };
    let tokens = tokens(&strip(source));
    let dir = if mod_rs {
        file.parent().unwrap().to_path_buf()
    } else {
        file.with_extension("")
    };
    let short = file
        .strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(file)
        .display()
        .to_string();
    let mut module = FileModule {
        path: path.clone(),
        named: Vec::new(),
        reexports: BTreeMap::new(),
    };
    let mut children = Vec::new();
    // Every module this file declares, so `use child::…` resolves wherever it stands.
    let declared: BTreeSet<Vec<String>> = tokens
        .windows(2)
        .filter(|w| w[0].0 == "mod" && is_ident(&w[1].0))
        .map(|w| {
            let mut p = path.clone();
            p.push(w[1].0.clone());
            p
        })
        .collect();
    // Inline modules (`mod tests { … }`) open at these brace depths.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut pending_inline = None;
    let mut path_attr: Option<usize> = None;
    let mut i = 0;
    while i < tokens.len() {
        let (tok, line) = (&tokens[i].0, tokens[i].1);
        let here = || {
            let mut p = path.clone();
            p.extend(inline.iter().map(|(n, _)| n.clone()));
            p
        };
        match tok.as_str() {
            "{" => {
                depth += 1;
                if let Some(name) = pending_inline.take() {
                    inline.push((name, depth));
                }
            }
            "}" => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            "#" if tokens.get(i + 2).is_some_and(|t| t.0 == "path") => path_attr = Some(i + 2),
            "mod" if i + 2 < tokens.len() && is_ident(&tokens[i + 1].0) => {
                let name = tokens[i + 1].0.clone();
                if tokens[i + 2].0 == "{" {
                    pending_inline = Some(name);
                } else if tokens[i + 2].0 == ";" {
                    let mut child = here();
                    child.push(name.clone());
                    let attr_line = path_attr.take().map(|k| tokens[k].1);
                    let (child_file, child_mod_rs) = match attr_line {
                        // Relative to the directory of the file that declares it.
                        Some(l) => (file.parent().unwrap().join(path_in(&source, l)), true),
                        None if dir.join(format!("{name}.rs")).exists() => {
                            (dir.join(format!("{name}.rs")), false)
                        }
                        None => (dir.join(&name).join("mod.rs"), true),
                    };
                    children.push((child_file, child, child_mod_rs));
                }
            }
            "use" => {
                let public = i > 0 && (tokens[i - 1].0 == "pub" || tokens[i - 1].0 == ")");
                let end = (i..tokens.len()).find(|&k| tokens[k].0 == ";").unwrap();
                for (used, alias) in use_tree(&tokens[i + 1..end]) {
                    let Some(target) = resolve(&used, &here(), &declared) else {
                        continue;
                    };
                    if public && let Some(alias) = alias {
                        module.reexports.insert(alias, target.clone());
                    }
                    let shown = used.join("::");
                    let shown = shown.strip_suffix("::self").unwrap_or(&shown);
                    module.named.push(Named {
                        target,
                        place: format!("{short}:{line} {shown}"),
                    });
                }
                i = end;
            }
            "crate" | "super" | "self"
                if tokens.get(i + 1).is_some_and(|t| t.0 == "::")
                    && (i == 0 || !matches!(tokens[i - 1].0.as_str(), "$" | "::")) =>
            {
                let mut used = vec![tok.clone()];
                let mut k = i + 1;
                while k + 1 < tokens.len() && tokens[k].0 == "::" && is_ident(&tokens[k + 1].0) {
                    used.push(tokens[k + 1].0.clone());
                    k += 2;
                }
                if let Some(target) = resolve(&used, &here(), &BTreeSet::new()) {
                    module.named.push(Named {
                        target,
                        place: format!("{short}:{line} {}", used.join("::")),
                    });
                }
                i = k - 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(module);
    for (child_file, child_path, child_mod_rs) in children {
        load(&child_file, child_path, child_mod_rs, out);
    }
}

/// The string of the `#[path = "…"]` on line `line` of `source`.
fn path_in(source: &str, line: usize) -> String {
    let text = source.lines().nth(line - 1).unwrap();
    let start = text.find('"').unwrap() + 1;
    let end = start + text[start..].find('"').unwrap();
    text[start..end].to_string()
}

/// `used` made absolute from the module `here`: `crate::…`, `super::…`, `self::…`, or a
/// module among `children` (those the file declares). `None` for another crate's path.
fn resolve(
    used: &[String],
    here: &[String],
    children: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let mut at = here.to_vec();
    let mut rest = used;
    match used.first().map(String::as_str) {
        Some("crate") => {
            at.clear();
            rest = &used[1..];
        }
        Some("self" | "super") => {
            while let Some(first) = rest.first() {
                match first.as_str() {
                    "self" => {}
                    "super" => {
                        at.pop()?;
                    }
                    _ => break,
                }
                rest = &rest[1..];
            }
        }
        Some(first) => {
            let mut child = here.to_vec();
            child.push(first.to_string());
            if !children.contains(&child) {
                return None;
            }
        }
        None => return None,
    }
    at.extend(rest.iter().filter(|s| *s != "*" && *s != "self").cloned());
    Some(at)
}

/// The paths of a use tree (the tokens between `use` and `;`), each with the name it binds
/// (`None` for a glob).
fn use_tree(tokens: &[(String, usize)]) -> Vec<(Vec<String>, Option<String>)> {
    fn walk(
        t: &[(String, usize)],
        i: &mut usize,
        prefix: Vec<String>,
        out: &mut Vec<(Vec<String>, Option<String>)>,
    ) {
        let mut path = prefix;
        while *i < t.len() {
            match t[*i].0.as_str() {
                "::" => *i += 1,
                "{" => {
                    *i += 1;
                    loop {
                        walk(t, i, path.clone(), out);
                        match t.get(*i).map(|x| x.0.as_str()) {
                            Some(",") => *i += 1,
                            Some("}") => {
                                *i += 1;
                                break;
                            }
                            _ => break,
                        }
                        if t.get(*i).is_some_and(|x| x.0 == "}") {
                            *i += 1;
                            break;
                        }
                    }
                    return;
                }
                "," | "}" => break,
                "as" => {
                    let alias = t[*i + 1].0.clone();
                    *i += 2;
                    out.push((path, Some(alias)));
                    return;
                }
                "*" => {
                    path.push("*".into());
                    *i += 1;
                    out.push((path, None));
                    return;
                }
                name => {
                    path.push(name.to_string());
                    *i += 1;
                }
            }
        }
        let alias = match path.last().map(String::as_str) {
            Some("self") => path.iter().rev().nth(1).cloned(),
            other => other.map(str::to_string),
        };
        out.push((path, alias));
    }
    let mut out = Vec::new();
    let mut i = 0;
    // `use ::x` names an extern crate.
    if tokens.first().is_some_and(|t| t.0 == "::") {
        return out;
    }
    walk(tokens, &mut i, Vec::new(), &mut out);
    out
}

fn is_ident(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Identifiers, `::`, and single punctuation characters, each with its line.
fn tokens(code: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((chars[start..i].iter().collect(), line));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(("::".into(), line));
            i += 2;
        } else {
            out.push((c.to_string(), line));
            i += 1;
        }
    }
    out
}

/// `source` with comments, string and character literals blanked (newlines kept), so only
/// code is read.
fn strip(source: &str) -> String {
    let c: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |out: &mut String, s: &[char]| {
        out.extend(s.iter().map(|&ch| if ch == '\n' { '\n' } else { ' ' }));
    };
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let start = i;
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut nesting = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    nesting += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    nesting -= 1;
                    i += 2;
                    if nesting == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if (c[i] == 'r' || (c[i] == 'b' && c.get(i + 1) == Some(&'r')))
            && (i == 0 || !ident(c[i - 1]))
            && {
                let mut k = i + if c[i] == 'b' { 2 } else { 1 };
                while c.get(k) == Some(&'#') {
                    k += 1;
                }
                c.get(k) == Some(&'"')
            }
        {
            // Raw string: r#"…"#, as many # at the end as at the start.
            i += if c[i] == 'b' { 2 } else { 1 };
            let mut hashes = 0;
            while c[i] == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1;
            while i < c.len() {
                if c[i] == '"' && (1..=hashes).all(|h| c.get(i + h) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c[i] == '\'' && (c.get(i + 1) == Some(&'\\') || c.get(i + 2) == Some(&'\'')) {
            // A character literal ('x', '\n', '\u{..}'), not a lifetime.
            i += 1;
            while i < c.len() && c[i] != '\'' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else {
            out.push(c[i]);
            i += 1;
            continue;
        }
        let end = i.min(c.len());
        blank(&mut out, &c[start..end]);
        i = end;
    }
    out
}
