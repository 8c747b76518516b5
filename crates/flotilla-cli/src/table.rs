//! kubectl-style tables: left-aligned columns, three spaces apart, no trailing padding.

/// Renders `headers` and `rows` like kubectl's printer.
pub(crate) fn render(headers: &[String], rows: &[Vec<String>]) -> String {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate().take(columns) {
            text.push_str(cell);
            if i + 1 < columns {
                let pad = widths[i] - cell.chars().count() + 3;
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers);
    for row in rows {
        line(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let h = vec!["NAME".to_string(), "READY".to_string()];
        let rows = vec![vec!["a-long-name".to_string(), "1/1".to_string()]];
        assert_eq!(
            render(&h, &rows),
            "NAME          READY\na-long-name   1/1\n"
        );
    }
}
