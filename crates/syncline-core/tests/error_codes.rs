//! The error codes apps see are listed twice: as the Rust enum
//! `SynclineErrorCode` (`src/codes.rs`) and as the TypeScript union of the
//! npm package (`SYNCLINE_ERROR_CODES` in `npm/src/errors.ts`). This test
//! reads the TypeScript list and fails when the two differ, in names or
//! order.

use std::path::Path;

use syncline_core::SynclineErrorCode;

/// The string literals of `export const SYNCLINE_ERROR_CODES = [ … ] as const;`,
/// in order (each line's first `"…"`; comments after it are ignored).
fn typescript_codes(source: &str) -> Vec<String> {
    let start = source
        .find("export const SYNCLINE_ERROR_CODES = [")
        .expect("npm/src/errors.ts declares SYNCLINE_ERROR_CODES");
    let body = &source[start..];
    let end = body
        .find("] as const;")
        .expect("the list ends with `] as const;`");
    body[..end]
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("//"))
        .map(|line| {
            let rest = line
                .strip_prefix('"')
                .unwrap_or_else(|| panic!("not a code: {line}"));
            rest[..rest.find('"').expect("a closing quote")].to_string()
        })
        .collect()
}

#[test]
fn rust_and_typescript_list_the_same_codes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../npm/src/errors.ts");
    let source = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let typescript = typescript_codes(&source);
    let rust: Vec<&str> = SynclineErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        typescript, rust,
        "npm/src/errors.ts and crates/syncline-core/src/codes.rs list different codes"
    );
}

#[test]
fn the_parser_sees_a_drift() {
    let drifted = "export const SYNCLINE_ERROR_CODES = [\n  // a group\n  \"DocNotFound\", // why\n  \"Extra\",\n] as const;\n";
    assert_eq!(typescript_codes(drifted), ["DocNotFound", "Extra"]);
}
