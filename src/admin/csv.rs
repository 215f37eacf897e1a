//! Just enough CSV (RFC 4180) for the reports: quoted fields with `""` escapes, CRLF or LF.

/// One CSV line from fields, quoting those that need it; ends with `\r\n`.
pub(crate) fn line<I, S>(fields: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = String::new();
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let field = field.as_ref();
        if field.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push_str("\r\n");
    out
}

/// The records of a CSV document (blank lines skipped), or the 1-based line of the first
/// unterminated quote.
pub(crate) fn parse(text: &str) -> Result<Vec<Vec<String>>, usize> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut line = 1;
    let mut quote_line = 0;
    let mut chars = text.trim_start_matches('\u{feff}').chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => {
                quoted = true;
                quote_line = line;
            }
            ',' => record.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                line += 1;
                record.push(std::mem::take(&mut field));
                if !(record.len() == 1 && record[0].trim().is_empty()) {
                    records.push(std::mem::take(&mut record));
                }
                record.clear();
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(quote_line);
    }
    record.push(field);
    if !(record.len() == 1 && record[0].trim().is_empty()) {
        records.push(record);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_quoted_fields() {
        let text = format!(
            "{}{}",
            line(["a", "b,c", "say \"hi\""]),
            line(["1", "", "x"])
        );
        assert_eq!(
            parse(&text).unwrap(),
            vec![
                vec!["a".to_owned(), "b,c".into(), "say \"hi\"".into()],
                vec!["1".to_owned(), "".into(), "x".into()],
            ]
        );
        assert_eq!(parse("a,b\n\nc,d").unwrap().len(), 2);
        assert_eq!(parse("a\n\"open,b\n"), Err(2));
    }
}
