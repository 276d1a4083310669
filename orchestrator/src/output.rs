//! Rendering results for people (tables) and programs (JSON, CSV). Every function returns the
//! text; callers print it to stdout, so stdout holds results only and stderr everything else.

use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Human-readable tables.
    Table,
    /// JSON on stdout, nothing else.
    Json,
    /// Comma-separated values with a header line.
    Csv,
}

/// A table as every command prints one: condensed UTF-8 borders, columns fitted to the
/// terminal, `header` on top.
pub(crate) fn table(header: impl Into<comfy_table::Row>) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    table
}

/// One CSV line (no line end): fields joined by commas, quoted when they need it.
pub(crate) fn csv_line<S: AsRef<str>>(fields: impl IntoIterator<Item = S>) -> String {
    let quote = |f: &str| {
        if f.contains([',', '"', '\n']) {
            format!("\"{}\"", f.replace('"', "\"\""))
        } else {
            f.to_owned()
        }
    };
    fields
        .into_iter()
        .map(|f| quote(f.as_ref()))
        .collect::<Vec<_>>()
        .join(",")
}
