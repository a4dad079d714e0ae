//! `cargo xtask lint`: clippy (the kernel in each of its feature sets too),
//! rustfmt, the unsafe audit and the kernel's module graph.
//!
//! The audit enforces the project rule that drivers (drivers/, drivers/mlx5/)
//! and the network stack (net/) contain no `unsafe` at all: no `unsafe`
//! token in any of their Rust sources, and `#![forbid(unsafe_code)]` in each
//! crate's lib.rs so the compiler keeps it that way.
//!
//! The module graph check keeps the kernel's modules free of import
//! cycles (see [`module_cycles`]): dependencies run one way, from the
//! shell and the main loop down to the drivers and the hardware.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::workspace::{Workspace, cargo};
use crate::{Result, XtaskError};

/// Directories whose crates must be free of `unsafe` (those that exist are audited).
pub const SAFE_DIRS: &[&str] = &["drivers", "net", "testnet"];

/// Crate roots whose modules must not import each other in a cycle.
pub const ACYCLIC_CRATES: &[&str] = &["kernel/src/bin/cxos/main.rs", "kernel/src/lib.rs"];

/// `cargo clippy` arguments of the lint. `--all-features` so feature-gated
/// code (mlx5-sim's `vfio` front end) is linted too.
pub const CLIPPY: &[&str] = &[
    "clippy",
    "--workspace",
    "--all-targets",
    "--all-features",
    "--",
    "-D",
    "warnings",
];
/// `cargo fmt` arguments of the lint.
pub const RUSTFMT: &[&str] = &["fmt", "--all", "--check"];
/// The kernel's feature sets besides the default (`mlx5`, `net`) and
/// [`CLIPPY`]'s `--all-features`: no driver, and the driver without the
/// network stack (`net` needs `mlx5`); each must build without warnings.
pub const KERNEL_FEATURE_SETS: &[(&str, &[&str])] = &[
    (
        "kernel-no-driver",
        &[
            "clippy",
            "-p",
            "cxos-kernel",
            "--all-targets",
            "--no-default-features",
            "--",
            "-D",
            "warnings",
        ],
    ),
    (
        "kernel-mlx5-only",
        &[
            "clippy",
            "-p",
            "cxos-kernel",
            "--all-targets",
            "--no-default-features",
            "--features",
            "mlx5",
            "--",
            "-D",
            "warnings",
        ],
    ),
];

/// Runs all three; returns 0 when clean, 1 when something was found.
pub fn run(ws: &Workspace) -> Result<u8> {
    let mut failures = Vec::new();
    let sets = KERNEL_FEATURE_SETS.iter().map(|(_, args)| *args);
    for args in [CLIPPY, RUSTFMT].into_iter().chain(sets) {
        eprintln!("lint: cargo {}", args.join(" "));
        let status = Command::new(cargo())
            .args(args)
            .current_dir(&ws.root)
            .status()
            .map_err(|e| XtaskError::msg(format!("cannot run cargo {}: {e}", args[0])))?;
        if !status.success() {
            let cmd: Vec<&str> = args.iter().copied().take_while(|a| *a != "--").collect();
            failures.push(format!("cargo {} failed", cmd.join(" ")));
        }
    }
    eprintln!("lint: unsafe audit of {}", SAFE_DIRS.join(", "));
    let findings = audit(&ws.root)?;
    for finding in &findings {
        eprintln!("lint: {finding}");
    }
    if !findings.is_empty() {
        failures.push(format!("unsafe audit: {} finding(s)", findings.len()));
    }
    eprintln!("lint: module graphs of {}", ACYCLIC_CRATES.join(", "));
    let cycles = import_cycles(&ws.root)?;
    for cycle in &cycles {
        eprintln!("lint: {cycle}");
    }
    if !cycles.is_empty() {
        failures.push(format!("{} import cycle(s)", cycles.len()));
    }
    if failures.is_empty() {
        eprintln!("lint: ok");
        Ok(0)
    } else {
        eprintln!("lint: FAILED: {}", failures.join(", "));
        Ok(1)
    }
}

/// Every import cycle of the [`ACYCLIC_CRATES`], one line each
/// (`<root>: import cycle a -> b -> a`).
pub fn import_cycles(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for crate_root in ACYCLIC_CRATES {
        for cycle in crate_cycles(&root.join(crate_root))? {
            out.push(format!("{crate_root}: import cycle {}", cycle.join(" -> ")));
        }
    }
    Ok(out)
}

/// Audits every crate under [`SAFE_DIRS`]; returns one message per problem.
pub fn audit(root: &Path) -> Result<Vec<String>> {
    let mut findings = Vec::new();
    for dir in SAFE_DIRS {
        let dir = root.join(dir);
        if !dir.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&dir, &mut files)?;
        files.sort();
        for file in &files {
            let source = std::fs::read_to_string(file)?;
            for line in unsafe_token_lines(&source) {
                findings.push(format!(
                    "{}:{line}: `unsafe` is not allowed here",
                    rel(root, file)
                ));
            }
        }
        let mut manifests = Vec::new();
        manifests_under(&dir, &mut manifests)?;
        manifests.sort();
        for manifest in manifests {
            let lib = manifest.with_file_name("src").join("lib.rs");
            if !lib.is_file() {
                continue;
            }
            let source = std::fs::read_to_string(&lib)?;
            if !forbids_unsafe(&source) {
                findings.push(format!(
                    "{}: missing `#![forbid(unsafe_code)]`",
                    rel(root, &lib)
                ));
            }
        }
    }
    Ok(findings)
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n == "target" || n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

fn manifests_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let manifest = dir.join("Cargo.toml");
    if manifest.is_file() {
        out.push(manifest);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let skip = path
            .file_name()
            .is_some_and(|n| n == "target" || n == "src");
        if path.is_dir() && !skip {
            manifests_under(&path, out)?;
        }
    }
    Ok(())
}

/// True if the crate root has `#![forbid(unsafe_code)]` as code (not in a comment).
pub fn forbids_unsafe(source: &str) -> bool {
    let code = strip_comments_and_literals(source);
    let compact: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let mut rest = compact.as_str();
    while let Some(at) = rest.find("#![forbid(") {
        rest = &rest[at + "#![forbid(".len()..];
        if let Some(end) = rest.find(")]")
            && rest[..end].split(',').any(|lint| lint == "unsafe_code")
        {
            return true;
        }
    }
    false
}

/// Line numbers (1-based) holding the identifier token `unsafe` outside
/// comments, string and character literals.
pub fn unsafe_token_lines(source: &str) -> Vec<usize> {
    let code = strip_comments_and_literals(source);
    let mut lines = Vec::new();
    for (index, line) in code.lines().enumerate() {
        let bytes = line.as_bytes();
        let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let mut from = 0;
        while let Some(at) = line[from..].find("unsafe") {
            let start = from + at;
            let end = start + "unsafe".len();
            let before_ok = start == 0 || !is_ident(bytes[start - 1]);
            let after_ok = end == bytes.len() || !is_ident(bytes[end]);
            // `r#unsafe` is a raw identifier, not the keyword.
            let raw = start >= 2 && &line[start - 2..start] == "r#";
            if before_ok && after_ok && !raw {
                lines.push(index + 1);
                break;
            }
            from = end;
        }
    }
    lines
}

/// Replaces comments and the contents of string/char literals with spaces,
/// keeping newlines so line numbers stay right.
fn strip_comments_and_literals(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(&chars, i) {
            // r"..." / r#"..."# / br#"..."#: ends at a quote followed by `hashes` #s.
            let open = chars[i..]
                .iter()
                .position(|&c| c == '"')
                .expect("raw string has a quote");
            for _ in 0..=open {
                out.push(' ');
            }
            i += open + 1;
            while i < chars.len() {
                if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += hashes + 1;
                    break;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a): a
            // literal closes within a few characters, a lifetime does not.
            let close = if next == Some('\\') {
                chars[i + 2..]
                    .iter()
                    .take(10)
                    .position(|&c| c == '\'')
                    .map(|p| p + i + 2)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match close {
                Some(end) => {
                    for _ in i..=end {
                        out.push(' ');
                    }
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// At a raw string start (`r"`, `r#..#"`, `br"`...) returns its number of `#`.
fn raw_string_start(chars: &[char], i: usize) -> Option<usize> {
    let prev_is_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    if prev_is_ident {
        return None;
    }
    let mut j = i;
    if chars.get(j) == Some(&'b') || chars.get(j) == Some(&'c') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while chars.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (chars.get(j) == Some(&'"')).then_some(hashes)
}

/// Reads the crate root `root` and the files of the modules it declares
/// (`mod x;`: `x.rs` or `x/mod.rs` beside it, with their own submodule
/// files folded in) and returns the import cycles among them (see
/// [`module_cycles`]). The root module is named after its file (`main`,
/// `lib`).
pub fn crate_cycles(root: &Path) -> Result<Vec<Vec<String>>> {
    let dir = root
        .parent()
        .ok_or_else(|| XtaskError::msg(format!("{}: no directory", root.display())))?;
    let root_name = root
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let root_source = std::fs::read_to_string(root)
        .map_err(|e| XtaskError::msg(format!("{}: {e}", root.display())))?;
    let mut modules = Vec::new();
    for name in declared_modules(&strip_comments_and_literals(&root_source)) {
        let source = module_text(dir, &name)?;
        modules.push((name, source));
    }
    modules.insert(0, (root_name.clone(), root_source));
    Ok(module_cycles(&root_name, &modules))
}

/// The source of module `name` under `dir`, with the files of its own
/// file submodules appended (they belong to it in the graph).
fn module_text(dir: &Path, name: &str) -> Result<String> {
    let flat = dir.join(format!("{name}.rs"));
    let (file, sub_dir) = if flat.is_file() {
        (flat, dir.join(name))
    } else {
        (dir.join(name).join("mod.rs"), dir.join(name))
    };
    let mut source = std::fs::read_to_string(&file)
        .map_err(|e| XtaskError::msg(format!("{}: {e}", file.display())))?;
    for sub in declared_modules(&strip_comments_and_literals(&source)) {
        // A file submodule's `super::` names the module being read, not
        // the crate root: inside it, it is `self::` (no edge).
        let text = module_text(&sub_dir, &sub)?.replace("super::", "self::");
        source.push('\n');
        source.push_str(&text);
    }
    Ok(source)
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The identifier starting at `i` (empty if none).
fn ident_at(chars: &[char], i: usize) -> String {
    chars[i.min(chars.len())..]
        .iter()
        .take_while(|c| is_ident_char(**c))
        .collect()
}

fn skip_space(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

/// True if `word` starts at `i` as a whole token.
fn word_at(chars: &[char], i: usize, word: &str) -> bool {
    let w: Vec<char> = word.chars().collect();
    chars.get(i..i + w.len()) == Some(&w[..])
        && (i == 0 || !is_ident_char(chars[i - 1]))
        && !chars.get(i + w.len()).is_some_and(|c| is_ident_char(*c))
}

/// Names of the file modules `code` declares at its top level: `mod x;`
/// (inline `mod x { .. }` bodies are part of the file).
fn declared_modules(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut depth = 0usize;
    for i in 0..chars.len() {
        match chars[i] {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ if depth == 0 && word_at(&chars, i, "mod") => {
                let at = skip_space(&chars, i + 3);
                let name = ident_at(&chars, at);
                if !name.is_empty() && chars.get(skip_space(&chars, at + name.len())) == Some(&';')
                {
                    out.push(name);
                }
            }
            _ => {}
        }
    }
    out
}

/// The first path segments after `at` (just past `crate::`): one name,
/// or one per item of a `{a, b::c, d::{e}}` group.
fn path_heads(chars: &[char], at: usize) -> Vec<String> {
    let at = skip_space(chars, at);
    if chars.get(at) != Some(&'{') {
        let name = ident_at(chars, at);
        return if name.is_empty() { vec![] } else { vec![name] };
    }
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut expect_head = true;
    let mut i = at;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' => {
                depth += 1;
                expect_head = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expect_head = true,
            _ if expect_head && is_ident_char(c) => {
                let name = ident_at(chars, i);
                i += name.len();
                heads.push(name);
                expect_head = false;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    heads
}

/// What module `code` (module `me`, the crate root if `is_root`) refers
/// to: the first segment of every `crate::` / `$crate::` path, of every
/// file-level `super::` path (in a top-level module that is the crate
/// root; inside an inline `mod tests { .. }` it is the file itself, not
/// counted), and in the root, of every bare path starting with one of
/// `modules` (its children are in scope there without `crate::`).
fn referenced_names(code: &str, is_root: bool, modules: &BTreeSet<String>) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    // One entry per open brace: whether it opened an inline module.
    let mut braces: Vec<bool> = Vec::new();
    let mut pending_mod = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            braces.push(std::mem::take(&mut pending_mod));
            i += 1;
            continue;
        }
        if c == '}' {
            braces.pop();
            i += 1;
            continue;
        }
        if c == ';' {
            pending_mod = false;
        }
        if !is_ident_char(c) || (i > 0 && is_ident_char(chars[i - 1])) {
            i += 1;
            continue;
        }
        let word = ident_at(&chars, i);
        let after = skip_space(&chars, i + word.len());
        let is_path = chars.get(after) == Some(&':') && chars.get(after + 1) == Some(&':');
        let before = chars[..i].iter().rev().find(|c| !c.is_whitespace());
        let continues_path = before == Some(&':');
        if word == "mod" {
            pending_mod = true;
        } else if is_path && !continues_path {
            let in_inline_mod = braces.iter().any(|m| *m);
            match word.as_str() {
                "crate" => out.extend(path_heads(&chars, after + 2)),
                "super" if !is_root && !in_inline_mod => out.extend(path_heads(&chars, after + 2)),
                w if is_root && modules.contains(w) => out.push(word.clone()),
                _ => {}
            }
        }
        i += word.len();
    }
    out
}

/// Macros `code` defines with `macro_rules!` (exported ones are reached
/// as `crate::name!`, which is a reference to the defining module).
fn defined_macros(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    for i in 0..chars.len() {
        if word_at(&chars, i, "macro_rules") && chars.get(i + 11) == Some(&'!') {
            let name = ident_at(&chars, skip_space(&chars, i + 12));
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

/// The import graph of a crate: `modules` are (name, source) pairs, one
/// of them the crate root `root`. A reference `crate::x::..` is an edge
/// to module `x`; `crate::m!` to the module defining macro `m`; any other
/// `crate::item` to the root (an item defined there). Features are not
/// evaluated: a `#[cfg]`-gated reference counts.
pub fn module_graph(
    root: &str,
    modules: &[(String, String)],
) -> BTreeMap<String, BTreeSet<String>> {
    let names: BTreeSet<String> = modules
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| n != root)
        .collect();
    let codes: Vec<(String, String)> = modules
        .iter()
        .map(|(n, s)| (n.clone(), strip_comments_and_literals(s)))
        .collect();
    let mut macros = BTreeMap::new();
    for (name, code) in &codes {
        for m in defined_macros(code) {
            macros.entry(m).or_insert_with(|| name.clone());
        }
    }
    let mut graph = BTreeMap::new();
    for (name, code) in &codes {
        let mut targets = BTreeSet::new();
        for head in referenced_names(code, name == root, &names) {
            let target = if names.contains(&head) {
                head
            } else if let Some(m) = macros.get(&head) {
                m.clone()
            } else if head == "self" {
                continue;
            } else {
                root.to_string()
            };
            if &target != name {
                targets.insert(target);
            }
        }
        graph.insert(name.clone(), targets);
    }
    graph
}

/// The import cycles of a crate (see [`module_graph`]): one per tangle
/// (strongly connected set of modules), as the shortest path from its
/// first module (by name) back to itself, e.g. `[a, b, c, a]`.
pub fn module_cycles(root: &str, modules: &[(String, String)]) -> Vec<Vec<String>> {
    let graph = module_graph(root, modules);
    let mut cycles = Vec::new();
    for component in strongly_connected(&graph) {
        if component.len() < 2 {
            continue;
        }
        let start = component.iter().next().expect("non-empty").clone();
        // Breadth-first from `start` inside the component, back to it.
        let mut parent: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.clone()]);
        let mut last = None;
        'search: while let Some(node) = queue.pop_front() {
            for next in &graph[&node] {
                if !component.contains(next) {
                    continue;
                }
                if *next == start {
                    last = Some(node.clone());
                    break 'search;
                }
                if !parent.contains_key(next) {
                    parent.insert(next.clone(), node.clone());
                    queue.push_back(next.clone());
                }
            }
        }
        let mut path = vec![start.clone()];
        let mut node = last.expect("a strongly connected set has a cycle");
        while node != start {
            path.push(node.clone());
            node = parent[&node].clone();
        }
        path.push(start);
        path.reverse();
        cycles.push(path);
    }
    cycles
}

/// Tarjan's strongly connected components of `graph`.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !graph.contains_key(w) {
                continue;
            }
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_unsafe_blocks_fns_and_impls() {
        let src =
            "fn a() {}\nfn b() { unsafe { x() } }\nunsafe fn c() {}\nunsafe impl Send for X {}\n";
        assert_eq!(unsafe_token_lines(src), vec![2, 3, 4]);
    }

    #[test]
    fn ignores_comments_strings_and_identifiers() {
        let src = r####"#![forbid(unsafe_code)]
// no unsafe here
/* unsafe /* nested unsafe */ still comment unsafe */
let s = "unsafe { }";
let r = r#"unsafe "quoted" unsafe"#;
let c = '"'; let l: &'static str = "x"; fn f<'a>(x: &'a u8) {}
let not_unsafe = unsafe_code + my_unsafe + r#unsafe;
"####;
        assert_eq!(unsafe_token_lines(src), Vec::<usize>::new());
    }

    #[test]
    fn code_after_a_literal_is_still_checked() {
        let src = "let s = \"a \\\" b\"; unsafe { }\nlet c = '\\''; unsafe {}\n";
        assert_eq!(unsafe_token_lines(src), vec![1, 2]);
    }

    #[test]
    fn forbid_attribute_must_be_code() {
        assert!(forbids_unsafe("#![no_std]\n#![forbid(unsafe_code)]\n"));
        assert!(forbids_unsafe("#![forbid(missing_docs, unsafe_code)]\n"));
        assert!(forbids_unsafe("#![ forbid( unsafe_code ) ]\n"));
        assert!(!forbids_unsafe("// #![forbid(unsafe_code)]\n#![no_std]\n"));
        assert!(!forbids_unsafe("#![deny(unsafe_code)]\n"));
        assert!(!forbids_unsafe(
            "#![deny(a, unsafe_code)]\n#![forbid(missing_docs)]\n"
        ));
    }

    #[test]
    fn audits_a_tree() {
        let root = std::env::temp_dir().join(format!("xtask-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let good = root.join("drivers/src");
        let bad = root.join("drivers/mlx5/src");
        std::fs::create_dir_all(&good).unwrap();
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(root.join("drivers/Cargo.toml"), "").unwrap();
        std::fs::write(root.join("drivers/mlx5/Cargo.toml"), "").unwrap();
        std::fs::write(good.join("lib.rs"), "#![forbid(unsafe_code)]\n").unwrap();
        std::fs::write(bad.join("lib.rs"), "#![no_std]\n").unwrap();
        std::fs::write(bad.join("cmd.rs"), "\nfn f() { unsafe { } }\n").unwrap();
        let findings = audit(&root).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(
            findings,
            vec![
                "drivers/mlx5/src/cmd.rs:2: `unsafe` is not allowed here".to_string(),
                "drivers/mlx5/src/lib.rs: missing `#![forbid(unsafe_code)]`".to_string(),
            ]
        );
    }

    fn modules(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect()
    }

    /// A small kernel-shaped crate: `main` declares the modules and uses
    /// them bare; the others import through `crate::`.
    fn synthetic(registry: &str) -> Vec<(String, String)> {
        modules(&[
            (
                "main",
                "mod console;\nmod driver;\nmod netstack;\nmod registry;\n\
                 fn main() { registry::attach_all(); netstack::poll(); }\n\
                 pub fn power_off() {}\n",
            ),
            (
                "console",
                "#[macro_export]\nmacro_rules! println { () => { $crate::console::print() } }\n\
                 pub fn print() {}\n",
            ),
            (
                "driver",
                "use crate::{println, netstack::{self, Table}};\n\
                 // crate::registry is only mentioned in a comment\n\
                 pub fn open() { let _ = \"crate::registry\"; }\n\
                 #[cfg(test)]\nmod tests { use super::*; }\n",
            ),
            ("netstack", "use crate::println;\npub struct Table;\n"),
            ("registry", registry),
        ])
    }

    #[test]
    fn graph_follows_use_groups_macros_and_root_paths() {
        let g = module_graph(
            "main",
            &synthetic("pub fn attach_all() { crate::driver::open(); }"),
        );
        let set =
            |names: &[&str]| -> BTreeSet<String> { names.iter().map(|n| n.to_string()).collect() };
        assert_eq!(g["main"], set(&["netstack", "registry"]));
        assert_eq!(g["console"], set(&[]));
        assert_eq!(g["driver"], set(&["console", "netstack"]));
        assert_eq!(g["netstack"], set(&["console"]));
        assert_eq!(g["registry"], set(&["driver"]));
    }

    #[test]
    fn one_way_modules_have_no_cycle() {
        let crate_ = synthetic("pub fn attach_all() { crate::driver::open(); }");
        assert_eq!(module_cycles("main", &crate_), Vec::<Vec<String>>::new());
    }

    #[test]
    fn a_cycle_is_reported_with_its_path() {
        // registry -> driver -> netstack -> registry.
        let mut crate_ = synthetic("use crate::driver;\npub fn attach_all() { driver::open(); }");
        crate_[3]
            .1
            .push_str("pub fn poll() { crate::registry::attach_all(); }\n");
        assert_eq!(
            module_cycles("main", &crate_),
            vec![vec!["driver", "netstack", "registry", "driver"]]
        );
    }

    #[test]
    fn reaching_back_into_the_root_is_a_cycle() {
        // main uses registry bare; registry calls an item of main.
        let crate_ = synthetic("pub fn attach_all() { crate::power_off(); }");
        assert_eq!(
            module_cycles("main", &crate_),
            vec![vec!["main", "registry", "main"]]
        );
    }

    #[test]
    fn file_level_super_is_the_root_but_inline_module_super_is_not() {
        let crate_ = modules(&[
            ("lib", "mod a;\nmod b;\n"),
            ("a", "pub fn f() { super::b::g(); }\n"),
            (
                "b",
                "pub fn g() {}\nmod tests { use super::g; fn t() { super::super::a::f(); } }\n",
            ),
        ]);
        let g = module_graph("lib", &crate_);
        assert!(g["a"].contains("b"));
        assert!(g["b"].is_empty(), "{:?}", g["b"]);
    }

    #[test]
    fn a_file_submodules_super_is_its_parent_not_the_root() {
        let root = std::env::temp_dir().join(format!("xtask-modsuper-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("nic")).unwrap();
        std::fs::write(
            root.join("main.rs"),
            "mod nic;\nmod log;\nfn f() { nic::g(); }\n",
        )
        .unwrap();
        std::fs::write(
            root.join("nic.rs"),
            "mod wait;\npub struct State;\npub fn g() {}\n",
        )
        .unwrap();
        std::fs::write(
            root.join("nic/wait.rs"),
            "use super::State;\nuse crate::log;\n",
        )
        .unwrap();
        std::fs::write(root.join("log.rs"), "pub fn l() {}\n").unwrap();
        let cycles = crate_cycles(&root.join("main.rs")).unwrap();
        std::fs::write(root.join("log.rs"), "pub fn l() { crate::f(); }\n").unwrap();
        let with_cycle = crate_cycles(&root.join("main.rs")).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert!(cycles.is_empty(), "{cycles:?}");
        assert_eq!(with_cycle.len(), 1, "{with_cycle:?}");
    }

    #[test]
    fn reads_a_crate_from_disk() {
        let root = std::env::temp_dir().join(format!("xtask-modgraph-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("net")).unwrap();
        std::fs::write(root.join("lib.rs"), "pub mod a;\npub mod net;\n").unwrap();
        std::fs::write(root.join("a.rs"), "use crate::net::Thing;\n").unwrap();
        std::fs::write(root.join("net/mod.rs"), "mod inner;\npub struct Thing;\n").unwrap();
        std::fs::write(root.join("net/inner.rs"), "use crate::a;\n").unwrap();
        let cycles = crate_cycles(&root.join("lib.rs")).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(cycles, vec![vec!["a", "net", "a"]]);
    }
}
