//! `cargo xtask lint`: clippy, rustfmt, and the unsafe audit.
//!
//! The audit enforces the project rule that drivers (drivers/, drivers/mlx5/)
//! and the network stack (net/) contain no `unsafe` at all: no `unsafe`
//! token in any of their Rust sources, and `#![forbid(unsafe_code)]` in each
//! crate's lib.rs so the compiler keeps it that way.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::workspace::{Workspace, cargo};
use crate::{Result, XtaskError};

/// Directories whose crates must be free of `unsafe` (those that exist are audited).
pub const SAFE_DIRS: &[&str] = &["drivers", "net", "testnet"];

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

/// Runs all three; returns 0 when clean, 1 when something was found.
pub fn run(ws: &Workspace) -> Result<u8> {
    let mut failures = Vec::new();
    for args in [CLIPPY, RUSTFMT] {
        eprintln!("lint: cargo {}", args.join(" "));
        let status = Command::new(cargo())
            .args(args)
            .current_dir(&ws.root)
            .status()
            .map_err(|e| XtaskError::msg(format!("cannot run cargo {}: {e}", args[0])))?;
        if !status.success() {
            failures.push(format!("cargo {} failed", args[0]));
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
    if failures.is_empty() {
        eprintln!("lint: ok");
        Ok(0)
    } else {
        eprintln!("lint: FAILED: {}", failures.join(", "));
        Ok(1)
    }
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
}
