//! Output: aligned tables for people, JSON for programs.

use base64::Engine as _;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Columns padded to their widest cell; the last column is not padded.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank, extra cells are kept.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).map_or("", String::as_str);
                if i + 1 < columns {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(width - cell.chars().count() + 2));
                } else {
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// Prints one value as pretty JSON.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A value for a table cell: UTF-8 text with control characters escaped
/// (so rows stay on one line), otherwise `base64:` and the base64.
pub fn show_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.chars().any(char::is_control) => text.escape_debug().to_string(),
        Ok(text) => text.to_string(),
        Err(_) => format!(
            "base64:{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ),
    }
}

/// `-` for an absent value.
pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let mut table = Table::new(&["KEY", "VALUE", "REV"]);
        table.row(vec!["a".into(), "hello".into(), "7".into()]);
        table.row(vec!["longer-key".into(), "é".into(), "12345".into()]);
        assert_eq!(
            table.render(),
            "KEY         VALUE  REV\n\
             a           hello  7\n\
             longer-key  é      12345\n"
        );
    }

    #[test]
    fn short_and_long_rows() {
        let mut table = Table::new(&["A", "B"]);
        table.row(vec!["x".into()]);
        table.row(vec!["y".into(), "z".into(), "extra".into()]);
        assert_eq!(table.render(), "A  B\nx\ny  z  extra\n");
    }

    #[test]
    fn empty_table_has_headers() {
        assert_eq!(Table::new(&["NAME", "ID"]).render(), "NAME  ID\n");
    }

    #[test]
    fn bytes_are_shown_readably() {
        assert_eq!(show_bytes(b"plain text"), "plain text");
        assert_eq!(show_bytes(b"two\nlines"), "two\\nlines");
        assert_eq!(show_bytes(&[0xff, 0x00]), "base64:/wA=");
        assert_eq!(show_bytes(b""), "");
    }

    #[test]
    fn dashes_for_missing_values() {
        assert_eq!(or_dash(Some(3)), "3");
        assert_eq!(or_dash(None::<u64>), "-");
    }
}
