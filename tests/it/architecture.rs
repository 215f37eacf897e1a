//! The layer order of DESIGN.md §8, enforced: every `crate::…` path (in a `use` or inline)
//! and every `super::…` path that climbs out of its top-level module, in every file under
//! `src/`, may only name a module of a lower layer (or its own module). The check reads the
//! source text (comments and string literals skipped), so it also sees paths inside macros.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each top-level module of the library and its layer: a module may import only modules of
/// strictly lower layers. Modules on one layer are siblings and do not know each other.
/// `main.rs` and `lib.rs` are the crate roots and are not checked.
const LAYERS: &[(&str, u8)] = &[
    // Foundations: the wire types and the one clock.
    ("model", 0),
    ("clock", 0),
    // Pure rules.
    ("domain", 1),
    // Leaf services with no knowledge of each other.
    ("qr", 2),
    ("credentials", 2),
    ("store", 2),
    // Settings: validated with the domain's and the QR encoder's rules.
    ("config", 3),
    // Infrastructure read from the settings.
    ("tls", 4),
    ("telemetry", 4),
    ("published", 4),
    ("metrics", 4),
    // The outbound client.
    ("partner", 5),
    // The hub's work per operation, and its store-and-forward delivery.
    ("service", 6),
    // Back office and the published interface document, siblings of each other.
    ("admin", 7),
    ("console", 7),
    ("openapi", 7),
    // The HTTP surface, and the configuration reload (what SIGHUP swaps), siblings.
    ("api", 8),
    ("reload", 8),
    // Wiring: listeners, workers, shutdown; and writing a first configuration.
    ("app", 9),
    ("init_config", 9),
    // The tools, beside the product: the product never imports them (only the CLI does).
    ("simulator", 10),
    ("loadgen", 11),
    ("chaos", 12),
    // The command line: the product and its tools.
    ("cli", 13),
];

/// The tools: besides the layer rule, nothing but the CLI and other tools may name them.
const TOOLS: &[&str] = &["simulator", "loadgen", "chaos"];

/// The modules below the HTTP surface: they say what a result means (a refusal's kind, a
/// state), and `api` alone turns it into HTTP, so none of them may name an HTTP crate.
const HTTP_FREE: &[&str] = &["model", "domain", "store", "service"];

/// The crates whose types are HTTP's: axum, the `http` crate (also as `axum::http`), hyper.
const HTTP_CRATES: &[&str] = &["axum", "http", "hyper"];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Dollar,
    Other,
}

/// Splits Rust source into the few tokens the check needs, with their line numbers, and
/// skips comments, string, byte-string, raw-string and char literals (a `{` or a path inside
/// one is not code).
fn tokens(source: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let count_lines = |from: usize, to: usize, chars: &[char]| -> usize {
        chars[from..to.min(chars.len())]
            .iter()
            .filter(|c| **c == '\n')
            .count()
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let start = i;
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            line += count_lines(start, i, &chars);
        } else if c == '"' || ((c == 'b' || c == 'c') && next == Some('"')) {
            let start = i;
            i += if c == '"' { 1 } else { 2 };
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            line += count_lines(start, i, &chars);
        } else if (c == 'r' || ((c == 'b' || c == 'c') && next == Some('r')))
            && raw_string_hashes(&chars, i).is_some()
        {
            let start = i;
            let (hashes, body) = raw_string_hashes(&chars, i).unwrap_or((0, i));
            i = body;
            loop {
                if i >= chars.len() {
                    break;
                }
                if chars[i] == '"' && (0..hashes).all(|h| chars.get(i + 1 + h) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            line += count_lines(start, i, &chars);
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((Token::Ident(chars[start..i].iter().collect()), line));
        } else if c == ':' && next == Some(':') {
            out.push((Token::PathSep, line));
            i += 2;
        } else {
            out.push((
                match c {
                    '{' => Token::Open,
                    '}' => Token::Close,
                    ',' => Token::Comma,
                    '$' => Token::Dollar,
                    _ => Token::Other,
                },
                line,
            ));
            i += 1;
        }
    }
    out
}

/// At a raw string's start (`r"`, `r#"`, `br#"`…): its number of `#` and where its body
/// begins.
fn raw_string_hashes(chars: &[char], at: usize) -> Option<(usize, usize)> {
    let mut i = at;
    if chars[i] != 'r' {
        i += 1;
    }
    if chars.get(i) != Some(&'r') {
        return None;
    }
    // An identifier such as `bar` or `r2` is not a raw string.
    if at > 0 && (chars[at - 1].is_alphanumeric() || chars[at - 1] == '_') {
        return None;
    }
    i += 1;
    let mut hashes = 0;
    while chars.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    (chars.get(i) == Some(&'"')).then_some((hashes, i + 1))
}

/// The top-level modules a path names right after a `crate::` (or a `super::` that climbs
/// to the crate root) at `tokens[at]`: one, or several for a `{a, b::c}` group.
fn named_modules(tokens: &[(Token, usize)], at: usize) -> Vec<String> {
    match tokens.get(at) {
        Some((Token::Ident(name), _)) => vec![name.clone()],
        Some((Token::Open, _)) => {
            let mut names = Vec::new();
            let mut depth = 0;
            let mut expect_name = true;
            for (token, _) in &tokens[at + 1..] {
                match token {
                    Token::Open => depth += 1,
                    Token::Close if depth == 0 => break,
                    Token::Close => depth -= 1,
                    Token::Comma if depth == 0 => expect_name = true,
                    Token::Ident(name) if depth == 0 && expect_name => {
                        names.push(name.clone());
                        expect_name = false;
                    }
                    _ => {}
                }
            }
            names
        }
        _ => Vec::new(),
    }
}

/// Every top-level module a file names, with the line: `(line, module)`.
fn imports(file_module: &[String], source: &str) -> Vec<(usize, String)> {
    let tokens = tokens(source);
    let mut found = Vec::new();
    // Inline modules (`mod tests { … }`) deepen the module path for `super::`.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i].0 {
            Token::Open => depth += 1,
            Token::Close => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            Token::Ident(word) if word == "mod" => {
                if let (Some((Token::Ident(name), _)), Some((Token::Open, _))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    inline.push((name.clone(), depth));
                }
            }
            Token::Ident(word) if word == "crate" => {
                let after_dollar = i > 0 && tokens[i - 1].0 == Token::Dollar;
                if tokens.get(i + 1).map(|t| &t.0) == Some(&Token::PathSep) && !after_dollar {
                    for name in named_modules(&tokens, i + 2) {
                        found.push((tokens[i].1, name));
                    }
                }
            }
            Token::Ident(word) if word == "super" => {
                let previous_is_path = i > 0 && tokens[i - 1].0 == Token::PathSep;
                if !previous_is_path {
                    let mut ups = 0;
                    let mut j = i;
                    while matches!(&tokens.get(j).map(|t| &t.0), Some(Token::Ident(w)) if w == "super")
                        && tokens.get(j + 1).map(|t| &t.0) == Some(&Token::PathSep)
                    {
                        ups += 1;
                        j += 2;
                    }
                    let here = file_module.len() + inline.len();
                    if ups > 0 && ups >= here {
                        for name in named_modules(&tokens, j) {
                            found.push((tokens[i].1, name));
                        }
                    }
                    i = j.max(i + 1);
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// Every path that starts at an HTTP crate (`axum::…`, `http::…`, `hyper::…`, in a `use` or
/// inline), with the line: `(line, crate)`. A path through another module (`x::http::…`) is
/// not one.
fn http_paths(source: &str) -> Vec<(usize, String)> {
    let tokens = tokens(source);
    let mut found = Vec::new();
    for (i, (token, line)) in tokens.iter().enumerate() {
        let Token::Ident(name) = token else {
            continue;
        };
        let starts_path = i == 0 || tokens[i - 1].0 != Token::PathSep;
        let continues = tokens.get(i + 1).map(|t| &t.0) == Some(&Token::PathSep);
        if starts_path && continues && HTTP_CRATES.contains(&name.as_str()) {
            found.push((*line, name.clone()));
        }
    }
    found
}

/// Every use of an HTTP crate in the modules of [`HTTP_FREE`], as `file:line: message`.
fn http_violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap_or(&file).to_path_buf();
        let module = module_path(&relative);
        let Some(top) = module.first() else {
            continue;
        };
        if !HTTP_FREE.contains(&top.as_str()) {
            continue;
        }
        let shown = Path::new("src").join(&relative).display().to_string();
        let source =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {file:?}: {e}"));
        for (line, krate) in http_paths(&source) {
            found.push(format!(
                "{shown}:{line}: `{top}` names `{krate}::…`; only `api` speaks HTTP"
            ));
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {dir:?}: {e}"));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("reading {dir:?}: {e}"))
            .path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/store/sqlite.rs` → `[store, sqlite]`; `src/store/mod.rs` → `[store]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// Every import against the layer order, as `file:line: message`.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap_or(&file).to_path_buf();
        let module = module_path(&relative);
        let shown = Path::new("src").join(&relative).display().to_string();
        let Some(top) = module.first().cloned() else {
            continue;
        };
        if top == "main" || top == "lib" {
            continue;
        }
        let Some(own) = layer(&top) else {
            found.push(format!(
                "{shown}:1: module `{top}` has no layer; add it to LAYERS and DESIGN.md §8"
            ));
            continue;
        };
        let source =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {file:?}: {e}"));
        for (line, target) in imports(&module, &source) {
            if target == top || target == "self" {
                continue;
            }
            match layer(&target) {
                None => found.push(format!(
                    "{shown}:{line}: `crate::{target}` is not a module with a layer"
                )),
                Some(theirs) if theirs >= own => found.push(format!(
                    "{shown}:{line}: `{top}` (layer {own}) imports `{target}` (layer {theirs}); \
                     only lower layers may be imported"
                )),
                Some(_)
                    if TOOLS.contains(&target.as_str())
                        && !TOOLS.contains(&top.as_str())
                        && top != "cli" =>
                {
                    found.push(format!(
                        "{shown}:{line}: the product (`{top}`) imports the tool `{target}`"
                    ))
                }
                Some(_) => {}
            }
        }
    }
    found
}

#[test]
fn every_import_points_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "{} imports against the layer order (DESIGN.md §8):\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn no_http_below_the_api() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = http_violations(&src);
    assert!(
        found.is_empty(),
        "{} uses of HTTP types below the API (DESIGN.md §8):\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn the_http_check_sees_uses_and_inline_paths_but_not_other_modules() {
    let source = r#"
use axum::http::StatusCode;
// use hyper::body; is a comment
fn f() -> http::Method { let s = "axum::Json"; crate::partner::http::get(); todo!() }
"#;
    assert_eq!(
        http_paths(source),
        vec![(2, "axum".to_owned()), (4, "http".to_owned())]
    );
}

#[test]
fn every_top_level_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("reading src/lib.rs");
    let mut declared = BTreeMap::new();
    for (n, line) in lib.lines().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = words.iter().position(|w| *w == "mod") {
            if let Some(name) = words.get(i + 1) {
                declared.insert(name.trim_end_matches(';').to_owned(), n + 1);
            }
        }
    }
    let missing: Vec<String> = declared
        .iter()
        .filter(|(m, _)| layer(m).is_none())
        .map(|(m, line)| format!("src/lib.rs:{line}: module `{m}` has no layer"))
        .collect();
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn the_checker_sees_grouped_nested_and_inline_paths() {
    let source = r#"
use crate::{api::operation, store};
// use crate::cli; is a comment
fn f() { let s = "crate::app"; crate::console::router(); }
mod tests {
    use super::*;
    use super::super::metrics;
}
"#;
    let found = imports(&["qr".to_owned()], source);
    assert_eq!(
        found,
        vec![
            (2, "api".to_owned()),
            (2, "store".to_owned()),
            (4, "console".to_owned()),
            (7, "metrics".to_owned()),
        ]
    );
}
