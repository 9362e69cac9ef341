//! Addresses taken out of text bound for the logs. Mail servers quote the recipient in
//! their replies (`550 5.1.1 <reader@example.com>: Recipient address rejected`), and a
//! reader's address must never reach a log; the database keeps the reply whole for the
//! console.

use std::borrow::Cow;

/// What stands in for each address.
pub const PLACEHOLDER: &str = "[address]";

/// `text` with every email address in it, bracketed or bare, replaced by [`PLACEHOLDER`].
/// Errs towards redacting: anything shaped like `local@domain` goes.
pub fn addresses(text: &str) -> Cow<'_, str> {
    let mut redacted = String::new();
    let mut copied = 0;
    let mut search_from = 0;
    while let Some(offset) = text[search_from..].find('@') {
        let at = search_from + offset;
        let start = copied + local_part_start(&text[copied..at]);
        let end = at + 1 + domain_len(&text[at + 1..]);
        if start < at && end > at + 1 {
            redacted.push_str(&text[copied..start]);
            redacted.push_str(PLACEHOLDER);
            copied = end;
            search_from = end;
        } else {
            search_from = at + 1;
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    redacted.push_str(&text[copied..]);
    Cow::Owned(redacted)
}

/// RFC 5322's `atext` and the dot, and any letter beyond ASCII (RFC 6531).
fn is_local_part_char(c: char) -> bool {
    c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c)
}

/// Where the local part ending just before an `@` starts within `before` (its length
/// when there is none).
fn local_part_start(before: &str) -> usize {
    if let Some(inside) = before.strip_suffix('"') {
        if let Some(open) = inside.rfind('"') {
            return open;
        }
    }
    before
        .char_indices()
        .rev()
        .take_while(|(_, c)| is_local_part_char(*c))
        .last()
        .map_or(before.len(), |(at, _)| at)
}

/// The length of the domain at the start of `after`: labels, or an address literal in
/// brackets. A dot or hyphen that ends a sentence is not part of it.
fn domain_len(after: &str) -> usize {
    if after.starts_with('[') {
        return after.find(']').map_or(0, |close| close + 1);
    }
    let run = after
        .char_indices()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '-' || *c == '.')
        .last()
        .map_or(0, |(at, c)| at + c.len_utf8());
    let domain = after[..run].trim_end_matches(['.', '-']);
    if domain.chars().any(char::is_alphanumeric) {
        domain.len()
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn replies_of_real_servers_lose_their_addresses_and_keep_the_rest() {
        for (reply, expected) in [
            (
                "permanent error (550): 5.1.1 <reader@example.com> User unknown",
                "permanent error (550): 5.1.1 <[address]> User unknown",
            ),
            (
                "550 5.1.1 <Jane.Doe+news@mail.example.co.uk>: Recipient address rejected: User unknown in virtual mailbox table",
                "550 5.1.1 <[address]>: Recipient address rejected: User unknown in virtual mailbox table",
            ),
            (
                "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient reader@example.com not found by SMTP address lookup",
                "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient [address] not found by SMTP address lookup",
            ),
            (
                "553 sorry, reader@example.com... is not in my list of allowed rcpthosts.",
                "553 sorry, [address]... is not in my list of allowed rcpthosts.",
            ),
            (
                "gave up after 5 attempts: temporary failure: 452 4.2.2 reader@example.com: mailbox full",
                "gave up after 5 attempts: temporary failure: 452 4.2.2 [address]: mailbox full",
            ),
            (
                "550 <\"john doe\"@example.com> and <jörg@bücher.example> unknown",
                "550 <[address]> and <[address]> unknown",
            ),
            (
                "550 RCPT TO:<@relay.example:user@[192.0.2.1]> refused",
                "550 RCPT TO:<@relay.example:[address]> refused",
            ),
            ("a@b.c,d@e.f", "[address],[address]"),
        ] {
            assert_eq!(addresses(reply), expected, "{reply}");
        }
    }

    #[test]
    fn text_without_an_address_is_returned_as_it_is_without_copying() {
        for text in [
            "421 4.3.2 Service not available",
            "no reply from the mail server within 30 s",
            "an @ alone, @mentions, trailing@ and @.",
            "",
        ] {
            assert!(matches!(addresses(text), Cow::Borrowed(t) if t == text));
        }
    }

    proptest! {
        #[test]
        fn no_address_survives_whatever_surrounds_it(
            local in "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,12}(\\.[A-Za-z0-9_+-]{1,8}){0,2}",
            domain in "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-z0-9]{1,6}){1,3}",
            before in "[ -?A-~]{0,20}",
            after in "[ -?A-~]{0,20}",
            open in prop::sample::select(vec!["", "<", " ", ":", "(", "\"", ",", "\t"]),
            close in prop::sample::select(vec!["", ">", " ", ":", ")", ".", "...", ",", ">:"]),
        ) {
            let address = format!("{local}@{domain}");
            let text = format!("{before}{open}{address}{close}{after}");
            let redacted = addresses(&text);
            prop_assert!(!redacted.contains(&address), "{text} -> {redacted}");
            prop_assert!(!redacted.contains('@'), "{text} -> {redacted}");
            prop_assert!(redacted.contains(PLACEHOLDER));
            if before.chars().last().is_none_or(|c| !is_local_part_char(c)) || !open.is_empty() {
                prop_assert!(redacted.starts_with(&format!("{before}{open}")), "{text} -> {redacted}");
            }
        }

        #[test]
        fn never_panics_and_leaves_text_without_at_signs_alone(text in "\\PC{0,80}") {
            let redacted = addresses(&text);
            if !text.contains('@') {
                prop_assert_eq!(redacted.as_ref(), text.as_str());
            }
        }
    }
}
