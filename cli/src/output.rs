//! What a command prints: the API's JSON as is (`--output json`), or a
//! table (the default): a list as one row per item under the command's
//! columns, a single object as one field per line.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// A cell: strings bare, arrays joined, absent as `-`.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) if s.is_empty() => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| cell(Some(i)))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

/// The rows of a list answer: the answer itself when it is an array, or
/// its one array field (`{"accounts": [...]}`).
fn rows(answer: &Value) -> Option<&Vec<Value>> {
    match answer {
        Value::Array(items) => Some(items),
        Value::Object(fields) => {
            let mut arrays = fields.values().filter_map(Value::as_array);
            let first = arrays.next()?;
            arrays.next().is_none().then_some(first)
        }
        _ => None,
    }
}

fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([h.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(header.iter().map(|h| h.to_uppercase()).collect())];
    out.extend(rows.iter().cloned().map(line));
    out.join("\n")
}

/// Renders `answer` for a command whose list columns are `columns`.
pub fn render(answer: &Value, format: Format, columns: &[&str]) -> String {
    if format == Format::Json {
        return serde_json::to_string_pretty(answer).unwrap_or_else(|_| answer.to_string());
    }
    if let Some(items) = rows(answer).filter(|_| !columns.is_empty()) {
        let cells: Vec<Vec<String>> = items
            .iter()
            .map(|item| columns.iter().map(|c| cell(item.get(*c))).collect())
            .collect();
        return table(columns, &cells);
    }
    match answer {
        Value::Object(fields) => {
            let cells: Vec<Vec<String>> = fields
                .iter()
                .map(|(k, v)| match v {
                    Value::Object(_) => vec![k.clone(), v.to_string()],
                    _ => vec![k.clone(), cell(Some(v))],
                })
                .collect();
            table(&["field", "value"], &cells)
        }
        other => cell(Some(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_list_is_a_table_of_its_columns_and_an_object_a_field_per_line() {
        let list = json!({"accounts": [
            {"id": "acct_a", "name": "A", "max_concurrency": 5, "home_region": ""},
            {"id": "acct_bb", "name": "Bee", "max_concurrency": 10},
        ]});
        assert_eq!(
            render(
                &list,
                Format::Table,
                &["id", "name", "max_concurrency", "home_region"]
            ),
            "ID       NAME  MAX_CONCURRENCY  HOME_REGION\n\
             acct_a   A     5                -\n\
             acct_bb  Bee   10               -"
        );
        let one = json!({"id": "acct_a", "scopes": ["a", "b"]});
        assert_eq!(
            render(&one, Format::Table, &[]),
            "FIELD   VALUE\nid      acct_a\nscopes  a,b"
        );
        assert_eq!(
            render(&one, Format::Json, &[]),
            serde_json::to_string_pretty(&one).unwrap()
        );
    }
}
