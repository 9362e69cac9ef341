use super::*;

#[test]
fn formula_cells_are_quoted_and_come_back_unchanged() {
    for value in ["=SUM(A1)", "+1", "-2", "@x", "\tx", "\rx"] {
        let guarded = guard_cell(value);
        assert!(guarded.starts_with('\''), "{value}");
        assert_eq!(unguard_cell(&guarded), value);
    }
    assert_eq!(guard_cell("ada@example.com"), "ada@example.com");
    assert_eq!(unguard_cell("'o'brien"), "'o'brien");
}

#[test]
fn a_header_row_names_the_columns_in_any_case_and_order() {
    let file = b"Name,EMAIL\nAda,ada@example.com\n,bob@example.com\n";
    let parsed = parse(file, "space-daily").unwrap();
    assert_eq!(parsed.rows.len(), 2);
    assert_eq!(parsed.rows[0].name.as_ref().unwrap().as_str(), "Ada");
    assert_eq!(parsed.rows[1].line, 3);
}

#[test]
fn headerless_lines_are_addresses_and_bad_ones_are_reported_by_line() {
    let file = "\u{feff}ada@example.com\nnot an address\n\nbob@example.com\nADA@example.com\n";
    let parsed = parse(file.as_bytes(), "space-daily").unwrap();
    assert_eq!(parsed.rows.len(), 2);
    let bad: Vec<(u64, &str)> = parsed
        .bad
        .iter()
        .map(|b| (b.line, b.reason.as_str()))
        .collect();
    assert_eq!(
        bad,
        [
            (2, "not an email address"),
            (5, "the same address is on line 1")
        ]
    );
}

#[test]
fn unsubscribed_rows_and_other_newsletters_are_left_out() {
    let file = b"email,newsletter,status\na@example.com,space-daily,confirmed\nb@example.com,space-daily,unsubscribed\nc@example.com,mars,confirmed\n";
    let parsed = parse(file, "space-daily").unwrap();
    assert_eq!(parsed.rows.len(), 1);
    assert_eq!(
        (parsed.unsubscribed_in_file, parsed.other_newsletter),
        (1, 1)
    );
}

#[test]
fn files_that_cannot_be_imported_say_why() {
    assert_eq!(parse(b"", "x").unwrap_err(), FileError::Empty);
    assert_eq!(parse(b"email\n", "x").unwrap_err(), FileError::Empty);
    assert!(matches!(
        parse(b"address,name\na@example.com,A\n", "x").unwrap_err(),
        FileError::NoEmailColumn(_)
    ));
    let big = "a@example.com\n".repeat(MAX_IMPORT_ROWS + 1);
    assert_eq!(
        parse(big.as_bytes(), "x").unwrap_err(),
        FileError::TooManyRows
    );
}
