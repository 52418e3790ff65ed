//! xtask's modules import one another without a circle: a piece two workflows
//! share lives in a leaf module (cmd.rs, problems.rs), never in one of them.
//!
//! The graph has one node per source file under src/ (main.rs is its own
//! crate). There is an edge for every path that names another module, in
//! `use` trees, in code and in macro arguments (`use crate::a::b`,
//! `super::x::f()`, `crate::a::f()`), and from each module to the children it
//! declares, since whoever reaches a module reaches its children. A child
//! naming its own ancestor (`super::VmRun` in vm/qemu.rs) is not an edge: a
//! parent is its children's public face, not a workflow they depend on.
//! `#[cfg(test)]` modules are skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// A module by its path from the crate root: `[]` is lib.rs,
/// `["book", "check"]` is book/check.rs.
type Module = Vec<String>;
type Graph = BTreeMap<Module, BTreeSet<Module>>;

#[test]
fn xtask_has_no_import_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&src, &src, &mut files);
    assert!(files.len() > 10, "found only {} files in src/", files.len());
    let sources: Vec<(String, String)> = files
        .iter()
        .map(|rel| {
            let text = fs::read_to_string(src.join(rel)).unwrap();
            (rel.to_string_lossy().into_owned(), text)
        })
        .collect();
    let graph = graph(&sources);
    let circles = circles(&graph);
    assert!(
        circles.is_empty(),
        "import circles in xtask/src (move the shared piece to a leaf module):\n{}",
        circles.join("\n")
    );
}

/// The checker finds a circle when there is one, through `use`, inline paths
/// and macro arguments, and accepts a child using its parent.
#[test]
fn the_check_finds_circles() {
    let files = |a: &str, b: &str| {
        vec![
            ("lib.rs".to_string(), "mod a; mod b; mod p;".to_string()),
            ("a.rs".to_string(), a.to_string()),
            ("b.rs".to_string(), b.to_string()),
            ("p/mod.rs".to_string(), "mod c; pub struct T;".to_string()),
            ("p/c.rs".to_string(), "use super::T;".to_string()),
        ]
    };
    let found = |a: &str, b: &str| circles(&graph(&files(a, b)));
    assert_eq!(
        found("use crate::b::f;", "use crate::{a, p};"),
        ["a → b → a"]
    );
    assert_eq!(
        found(
            "fn g() { crate::b::f(); }",
            "fn f() { eprintln!(\"{}\", crate::a::g()); }"
        ),
        ["a → b → a"]
    );
    assert_eq!(
        found("use crate::p::T;", "use crate::p::c;"),
        Vec::<String>::new()
    );
    assert_eq!(
        found("use crate::b;", "#[cfg(test)] mod tests { use crate::a; }"),
        Vec::<String>::new()
    );
    // p/c.rs is reached through p: a → p → c → a.
    let mut with_child = files("use crate::p;", "");
    with_child[4].1 = "use super::T; use crate::a::x;".to_string();
    assert_eq!(circles(&graph(&with_child)), ["a → p → p::c → a"]);
}

fn collect(src: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(src, &path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(src).unwrap().to_path_buf();
            if rel != Path::new("main.rs") {
                files.push(rel);
            }
        }
    }
}

/// `book/check.rs` → `["book", "check"]`, `book/mod.rs` → `["book"]`.
fn module_of(rel: &str) -> Module {
    let mut parts: Module = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

fn graph(sources: &[(String, String)]) -> Graph {
    let modules: BTreeSet<Module> = sources.iter().map(|(rel, _)| module_of(rel)).collect();
    let mut graph = Graph::new();
    for module in &modules {
        let edges = graph.entry(module.clone()).or_default();
        for child in &modules {
            if child.len() == module.len() + 1 && child.starts_with(module) {
                edges.insert(child.clone());
            }
        }
    }
    for (rel, text) in sources {
        let file = syn::parse_file(text).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let module = module_of(rel);
        let mut refs = Refs {
            modules: &modules,
            file: module.clone(),
            here: module.clone(),
            found: BTreeSet::new(),
        };
        refs.visit_file(&file);
        graph.get_mut(&module).unwrap().extend(refs.found);
    }
    graph
}

/// The modules one file names.
struct Refs<'a> {
    modules: &'a BTreeSet<Module>,
    file: Module,
    /// `file`, or an inline module inside it.
    here: Module,
    found: BTreeSet<Module>,
}

impl Refs<'_> {
    fn name(&mut self, segments: &[String]) {
        let Some(first) = segments.first() else {
            return;
        };
        let (mut target, rest) = match first.as_str() {
            "crate" => (Module::new(), &segments[1..]),
            "self" => (self.here.clone(), &segments[1..]),
            "super" => {
                let ups = segments.iter().take_while(|s| *s == "super").count();
                let keep = self.here.len().saturating_sub(ups);
                (self.here[..keep].to_vec(), &segments[ups..])
            }
            _ => (self.here.clone(), segments),
        };
        let start = target.len();
        for segment in rest {
            target.push(segment.clone());
            if !self.modules.contains(&target) {
                target.pop();
                break;
            }
        }
        // A bare name that is not a child module is an item or another crate.
        let named_nothing = first != "crate" && first != "super" && first != "self";
        if named_nothing && target.len() == start {
            return;
        }
        if !self.file.starts_with(&target) {
            self.found.insert(target);
        }
    }

    /// Paths in a macro's arguments, which syn leaves as tokens.
    fn tokens(&mut self, tokens: TokenStream) {
        let mut path: Vec<String> = Vec::new();
        let mut colons = 0;
        for token in tokens {
            match token {
                TokenTree::Ident(ident) if path.is_empty() || colons == 2 => {
                    path.push(ident.to_string());
                    colons = 0;
                }
                TokenTree::Punct(p) if p.as_char() == ':' && !path.is_empty() && colons < 2 => {
                    colons += 1
                }
                other => {
                    if matches!(path.first().map(String::as_str), Some("crate" | "super")) {
                        self.name(&path);
                    }
                    path.clear();
                    colons = 0;
                    if let TokenTree::Group(group) = other {
                        self.tokens(group.stream());
                    } else if let TokenTree::Ident(ident) = other {
                        path.push(ident.to_string());
                    }
                }
            }
        }
        if matches!(path.first().map(String::as_str), Some("crate" | "super")) {
            self.name(&path);
        }
    }
}

impl<'ast> Visit<'ast> for Refs<'_> {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        let test_only = item.attrs.iter().any(|attr| {
            attr.path().is_ident("cfg")
                && attr
                    .parse_args::<syn::Ident>()
                    .is_ok_and(|arg| arg == "test")
        });
        if test_only {
            return;
        }
        if let Some((_, items)) = &item.content {
            self.here.push(item.ident.to_string());
            for inner in items {
                self.visit_item(inner);
            }
            self.here.pop();
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut paths = Vec::new();
        expand(&item.tree, &mut Vec::new(), &mut paths);
        for path in paths {
            self.name(&path);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.name(&segments);
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }
}

/// `a::{b, c::d}` → `a::b`, `a::c::d`.
fn expand(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            expand(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) if n.ident == "self" => out.push(prefix.clone()),
        syn::UseTree::Name(n) => out.push([prefix.clone(), vec![n.ident.to_string()]].concat()),
        syn::UseTree::Rename(r) => out.push([prefix.clone(), vec![r.ident.to_string()]].concat()),
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => g.items.iter().for_each(|t| expand(t, prefix, out)),
    }
}

/// One line per circle: the shortest cycle through the first module of each
/// group of modules that reach one another.
fn circles(graph: &Graph) -> Vec<String> {
    let reaches = |from: &Module| -> BTreeSet<Module> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(module) = todo.pop() {
            for next in &graph[&module] {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let mut reported: BTreeSet<Module> = BTreeSet::new();
    let mut lines = Vec::new();
    for module in graph.keys() {
        if reported.contains(module) || !reaches(module).contains(module) {
            continue;
        }
        let group: BTreeSet<Module> = reaches(module)
            .into_iter()
            .filter(|other| reaches(other).contains(module))
            .collect();
        reported.extend(group.iter().cloned());
        let cycle = shortest_cycle(graph, module);
        let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
        let others = group.len() - (cycle.len() - 1);
        let mut line = names.join(" → ");
        if others > 0 {
            let all: Vec<String> = group.iter().map(|m| m.join("::")).collect();
            line.push_str(&format!(
                " (one of {} modules in the circle: {})",
                group.len(),
                all.join(", ")
            ));
        }
        lines.push(line);
    }
    lines
}

fn shortest_cycle(graph: &Graph, start: &Module) -> Vec<Module> {
    let mut came_from: BTreeMap<&Module, &Module> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(module) = queue.pop_front() {
        for next in &graph[module] {
            if next == start {
                let mut path = vec![start.clone(), module.clone()];
                let mut at = module;
                while at != start {
                    at = came_from[at];
                    path.push(at.clone());
                }
                path.reverse();
                if path[0] == path[1] {
                    path.remove(0);
                }
                return path;
            }
            if !came_from.contains_key(next) && next != start {
                came_from.insert(next, module);
                queue.push_back(next);
            }
        }
    }
    unreachable!("{start:?} is in a circle")
}
