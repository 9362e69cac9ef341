use std::fmt;
use std::str::FromStr;

use lettre::Address;
use lettre::message::Mailbox;
use serde::{Serialize, Serializer};
use validator::ValidateEmail;

use super::SubscriberName;

/// RFC 5321 caps a forward-path at 256 octets including the angle brackets.
const MAX_LEN: usize = 254;

/// Gmail's two domains: one mailbox under either, whatever dots its local part has.
const GMAIL_DOMAINS: [&str; 2] = ["gmail.com", "googlemail.com"];

/// A subscriber's email address that both our validator and the mailer accept.
///
/// Holding the `lettre::Address` rather than a `String` means `to_mailbox`
/// can never fail: the delivery worker gets exactly what was checked here.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriberEmail(Address);

/// Why a typed email address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// The address holds CR, LF, TAB, NUL or another control character.
    #[error("Email addresses cannot contain line breaks or control characters.")]
    ControlCharacters,
    /// Nothing but spaces was typed.
    #[error("Enter your email address.")]
    Empty,
    /// The address is over 254 bytes.
    #[error("That email address is too long (at most 254 characters).")]
    TooLong,
    /// The address is rejected by the validator or by the mailer.
    #[error("That doesn't look like an email address. It should look like reader@example.com.")]
    InvalidSyntax,
    /// The domain is an IP address rather than a name.
    #[error("Addresses at an IP address are not accepted; use a domain name such as example.com.")]
    IpLiteral,
    /// The domain is a single label such as `localhost`.
    #[error("The part after the @ must be a full domain name, such as example.com.")]
    DotlessDomain,
}

impl SubscriberEmail {
    /// Checks and normalises a typed address; the domain is lower-cased, the local part is kept.
    pub fn parse(raw: &str) -> Result<SubscriberEmail, EmailError> {
        // Before trimming, so a trailing "\r\n" smuggled into a header is refused, not hidden.
        if raw.chars().any(char::is_control) {
            return Err(EmailError::ControlCharacters);
        }
        let trimmed = raw.trim_matches(' ');
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.len() > MAX_LEN {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = trimmed.rsplit_once('@').ok_or(EmailError::InvalidSyntax)?;
        // RFC 2047 forbids decoding an encoded-word in an address, but mail clients do
        // (mail-parser shows "=?utf-8?q?=0D=0A?=@example.com" as a line break and an
        // empty address). No real mailbox is spelled so.
        if local
            .find("=?")
            .is_some_and(|start| local[start + 2..].contains("?="))
        {
            return Err(EmailError::InvalidSyntax);
        }
        let domain = normalise_domain(domain);
        let normalised = format!("{local}@{domain}");
        // Unicode lower-casing can change the byte length, so check the stored form too.
        if normalised.len() > MAX_LEN {
            return Err(EmailError::TooLong);
        }
        // Both libraries are checked against the stored form: validator follows the HTML
        // form rules readers expect, lettre decides whether the worker can actually send.
        if !normalised.validate_email() {
            return Err(EmailError::InvalidSyntax);
        }
        let address = Address::from_str(&normalised).map_err(|_| EmailError::InvalidSyntax)?;
        if domain.chars().any(is_default_ignorable) {
            return Err(EmailError::InvalidSyntax);
        }
        if is_ip_host(&domain) {
            return Err(EmailError::IpLiteral);
        }
        if !is_dotted_name(&domain) {
            return Err(EmailError::DotlessDomain);
        }
        Ok(SubscriberEmail(address))
    }

    /// The stored address, `local@domain` with the domain lower-cased.
    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }

    /// The whole address lower-cased, used as the uniqueness key.
    ///
    /// Local parts are case-sensitive per RFC 5321, but no real provider treats
    /// them so, and "Reader@" and "reader@" signing up twice is a mistake.
    pub fn key(&self) -> String {
        self.as_str().to_lowercase()
    }

    /// The mailbox the address delivers to, as the per-address limits count it: the
    /// [`key`](Self::key) without a `+tag`, and for Gmail (googlemail.com is the same
    /// service) without dots. Providers ignore both, so `v.ictim+1@gmail.com` and
    /// `victim@googlemail.com` land in one inbox and must share its allowance. Only for
    /// counting: the address stays as typed, and each spelling is its own subscriber.
    pub fn mailbox_key(&self) -> String {
        let key = self.key();
        // Parsing refused quoted local parts, so the only '@' is the separator.
        let (local, domain) = key.rsplit_once('@').unwrap_or((key.as_str(), ""));
        let local = local
            .split_once('+')
            .map_or(local, |(mailbox, _tag)| mailbox);
        if GMAIL_DOMAINS.contains(&domain) {
            format!("{}@gmail.com", local.replace('.', ""))
        } else {
            format!("{local}@{domain}")
        }
    }

    /// The part after the @, lower-cased.
    pub fn domain(&self) -> &str {
        self.0.domain()
    }

    /// The `To:` mailbox for this subscriber, with their name as display name if given.
    pub fn to_mailbox(&self, name: Option<&SubscriberName>) -> Mailbox {
        Mailbox::new(name.map(|n| n.as_str().to_owned()), self.0.clone())
    }
}

/// Lower-cases and folds full-width forms and ideographic full stops to ASCII. IDNA
/// maps them the same way when sending, so without this "ｅｘａｍｐｌｅ．com" would
/// get a second stored form and uniqueness key for the same mailbox.
fn normalise_domain(domain: &str) -> String {
    let folded: String = domain
        .chars()
        .map(|c| match c {
            '\u{3002}' | '\u{FF61}' => '.',
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect();
    folded.to_lowercase()
}

/// Unicode's Default_Ignorable_Code_Point set. IDNA silently drops these, so both
/// libraries accept "exa\u{AD}mple.com", an invisible second spelling of a domain.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Covers `[1.2.3.4]`, `[::1]` and hosts whose last label is a number: browsers and
/// `inet_aton` read `1.2.3.4`, `127.1` or `0x7f.1` as IPv4, so we treat them as IPs too.
fn is_ip_host(domain: &str) -> bool {
    if domain.starts_with('[') || domain.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let last = domain.rsplit('.').next().unwrap_or(domain);
    let is_decimal = !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit());
    let is_hex = last
        .strip_prefix("0x")
        .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
    is_decimal || is_hex
}

/// Both libraries accept `localhost`; a newsletter reader is never there.
fn is_dotted_name(domain: &str) -> bool {
    domain.contains('.') && domain.split('.').all(|label| !label.is_empty())
}

impl AsRef<str> for SubscriberEmail {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for SubscriberEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SubscriberEmail {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl TryFrom<&str> for SubscriberEmail {
    type Error = EmailError;

    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl TryFrom<String> for SubscriberEmail {
    type Error = EmailError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(raw: &str) -> String {
        match SubscriberEmail::parse(raw) {
            Ok(email) => email.as_str().to_owned(),
            Err(e) => panic!("{raw:?} should be accepted, got {e:?}"),
        }
    }

    fn err(raw: &str) -> EmailError {
        match SubscriberEmail::parse(raw) {
            Ok(email) => panic!("{raw:?} should be rejected, got {email:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn table_of_valid_addresses() {
        let cases = [
            ("reader@example.com", "reader@example.com"),
            ("  reader@example.com  ", "reader@example.com"),
            ("Reader@Example.COM", "Reader@example.com"),
            ("first.last@example.co.uk", "first.last@example.co.uk"),
            ("a+tag@sub.example.org", "a+tag@sub.example.org"),
            ("x@e.io", "x@e.io"),
            ("o'brien@example.ie", "o'brien@example.ie"),
            ("user%host@example.com", "user%host@example.com"),
            ("a/b=c?d{e}|f~g@example.com", "a/b=c?d{e}|f~g@example.com"),
            (
                "under_score-dash@ex-ample.com",
                "under_score-dash@ex-ample.com",
            ),
            ("123@123.com", "123@123.com"),
            ("reader@xn--exmple-cua.org", "reader@xn--exmple-cua.org"),
            // An IDN domain passes both libraries (each maps it through IDNA) and is
            // kept in Unicode; lettre punycodes it when it talks SMTP.
            ("jose@exämple.org", "jose@exämple.org"),
            ("jose@EXÄMPLE.org", "jose@exämple.org"),
            ("user@例え.jp", "user@例え.jp"),
            // IDNA reads these as example.com and 例え.jp; folding keeps one key per mailbox.
            ("a@ＥＸＡＭＰＬＥ．ｃｏｍ", "a@example.com"),
            ("user@例え。jp", "user@例え.jp"),
        ];
        for (raw, stored) in cases {
            assert_eq!(ok(raw), stored, "{raw:?}");
        }
        assert_eq!(
            SubscriberEmail::parse("Reader@ｅｘａｍｐｌｅ.com")
                .unwrap()
                .key(),
            SubscriberEmail::parse("reader@example.com").unwrap().key()
        );
    }

    #[test]
    fn invisible_characters_in_the_domain_are_refused() {
        // Both libraries accept these (IDNA drops them), so the check is ours.
        for raw in [
            "a@exa\u{AD}mple.com",
            "a@exa\u{200B}mple.com",
            "a@example.com\u{FEFF}",
            "a@exa\u{2060}mple.com",
        ] {
            assert_eq!(err(raw), EmailError::InvalidSyntax, "{raw:?}");
        }
    }

    #[test]
    fn table_of_invalid_addresses() {
        use EmailError::*;
        let cases = [
            ("", Empty),
            ("     ", Empty),
            ("a@b.com\r\n", ControlCharacters),
            ("\ta@b.com", ControlCharacters),
            ("a\0@b.com", ControlCharacters),
            ("a@b.com\u{7f}", ControlCharacters),
            ("a@b.com\u{85}", ControlCharacters),
            ("plainaddress", InvalidSyntax),
            ("@example.com", InvalidSyntax),
            ("reader@", InvalidSyntax),
            ("a b@example.com", InvalidSyntax),
            ("a@b@example.com", InvalidSyntax),
            // validator allows these dots, lettre does not: we need both to agree.
            (".reader@example.com", InvalidSyntax),
            ("reader.@example.com", InvalidSyntax),
            ("re..ader@example.com", InvalidSyntax),
            // lettre allows a quoted local part, validator does not.
            ("\"a b\"@example.com", InvalidSyntax),
            // lettre allows a non-ASCII local part (SMTPUTF8), validator does not.
            ("josé@exämple.org", InvalidSyntax),
            ("用户@例え.jp", InvalidSyntax),
            ("a@b_c.com", InvalidSyntax),
            ("a@-example.com", InvalidSyntax),
            ("a@example-.com", InvalidSyntax),
            // validator refuses these before our own dot rules see them.
            ("a@example.com.", InvalidSyntax),
            ("a@example..com", InvalidSyntax),
            ("a@.example.com", InvalidSyntax),
            ("a@[IPv6:::1]", InvalidSyntax),
            ("a@[1.2.3.4]", IpLiteral),
            ("a@[::1]", IpLiteral),
            ("a@1.2.3.4", IpLiteral),
            ("a@127.1", IpLiteral),
            ("a@example.123", IpLiteral),
            ("a@0x7f.1", IpLiteral),
            ("a@12345", IpLiteral),
            ("a@localhost", DotlessDomain),
            ("a@example", DotlessDomain),
        ];
        for (raw, expected) in cases {
            assert_eq!(err(raw), expected, "{raw:?}");
        }
    }

    #[test]
    fn key_is_whole_address_lower_cased() {
        let email = SubscriberEmail::parse("Reader@Example.COM").unwrap();
        assert_eq!(email.as_str(), "Reader@example.com");
        assert_eq!(email.key(), "reader@example.com");
        assert_eq!(email.domain(), "example.com");
        assert_eq!(email.to_string(), "Reader@example.com");
        assert_eq!(email.as_ref(), "Reader@example.com");
    }

    #[test]
    fn mailbox_key_folds_tags_case_and_gmail_dots() {
        let key = |raw: &str| SubscriberEmail::parse(raw).unwrap().mailbox_key();
        let cases = [
            ("victim@example.com", "victim@example.com"),
            ("Victim+News@Example.com", "victim@example.com"),
            ("victim+a+b@example.com", "victim@example.com"),
            // Dots count everywhere but at Gmail.
            ("v.ictim@example.com", "v.ictim@example.com"),
            ("v.i.c.t.i.m@gmail.com", "victim@gmail.com"),
            ("V.Ictim+x@GoogleMail.com", "victim@gmail.com"),
            ("victim@mail.gmail.com", "victim@mail.gmail.com"),
            ("+only@example.com", "@example.com"),
        ];
        for (raw, expected) in cases {
            assert_eq!(key(raw), expected, "{raw:?}");
        }
        // The address itself is kept as typed.
        let email = SubscriberEmail::parse("V.Ictim+x@gmail.com").unwrap();
        assert_eq!(email.as_str(), "V.Ictim+x@gmail.com");
        assert_eq!(email.key(), "v.ictim+x@gmail.com");
    }

    #[test]
    fn header_injection_never_yields_a_line_break() {
        for raw in [
            "a@b.com\nBcc: x@y.com",
            "a@b.com\r\nX: y",
            "a@b.com\rBcc: x@y.com",
            "a@b.com%0ABcc:x@y.com",
            "=?utf-8?q?a=0D=0A?=@b.com",
        ] {
            if let Ok(email) = SubscriberEmail::parse(raw) {
                assert!(!email.as_str().contains(['\r', '\n']), "{raw:?}");
                let header = email.to_mailbox(None).to_string();
                assert!(!header.contains(['\r', '\n']), "{raw:?}");
            }
        }
        assert_eq!(err("a@b.com\nBcc: x@y.com"), EmailError::ControlCharacters);
        assert_eq!(err("a@b.com\r\nX: y"), EmailError::ControlCharacters);
    }

    #[test]
    fn encoded_word_local_part_is_refused() {
        // Both libraries accept it (`=?...?=` is legal atext), but mail clients decode it
        // in the To header despite RFC 2047, into a line break.
        assert_eq!(err("=?utf-8?q?a=0D=0A?=@b.com"), EmailError::InvalidSyntax);
        assert_eq!(err("x=?utf-8?b?DQo=?=@b.com"), EmailError::InvalidSyntax);
        // An '=' and a '?' apart are still fine.
        assert_eq!(ok("a=b?c@b.com"), "a=b?c@b.com");
    }

    #[test]
    fn length_limit_is_254_bytes() {
        // validator caps a local part at 64 chars and lettre a label at 63, so build
        // the length out of several labels.
        let local = "a".repeat(64);
        let label = "b".repeat(60);
        let base = format!("{local}@{label}.{label}.{label}.");
        let fill = |total: usize| format!("{base}{}", "c".repeat(total - base.len()));
        let at_254 = fill(254);
        let at_255 = fill(255);
        assert_eq!(at_254.len(), 254);
        assert_eq!(ok(&at_254), at_254);
        assert_eq!(err(&at_255), EmailError::TooLong);
    }

    #[test]
    fn mailbox_carries_name_and_address() {
        let email = SubscriberEmail::parse("reader@example.com").unwrap();
        let name = SubscriberName::parse("Ada \"Countess\" Lovelace").unwrap();
        let mailbox = email.to_mailbox(name.as_ref());
        assert_eq!(mailbox.email.to_string(), "reader@example.com");
        assert_eq!(mailbox.name.as_deref(), Some("Ada \"Countess\" Lovelace"));
        assert_eq!(email.to_mailbox(None).to_string(), "reader@example.com");
    }

    #[test]
    fn errors_read_as_sentences() {
        assert_eq!(EmailError::Empty.to_string(), "Enter your email address.");
        assert!(
            EmailError::InvalidSyntax
                .to_string()
                .contains("reader@example.com")
        );
    }

    #[test]
    fn try_from_delegates_to_parse() {
        assert_eq!(
            SubscriberEmail::try_from("A@B.com"),
            SubscriberEmail::parse("A@B.com")
        );
        assert_eq!(
            SubscriberEmail::try_from(String::from("nope")),
            Err(EmailError::InvalidSyntax)
        );
    }

    fn control_char() -> impl Strategy<Value = char> {
        prop_oneof![
            prop::char::range('\u{0}', '\u{1f}'),
            prop::char::range('\u{7f}', '\u{9f}'),
        ]
    }

    /// Mostly near-valid shapes, so that accepted values are common enough to test.
    fn candidate() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[ -~]{0,40}",
            "[A-Za-z0-9._%+'-]{1,30}@[A-Za-z0-9.-]{1,20}(\\.[A-Za-z0-9]{1,6})?",
            "[a-z0-9.]{1,10}@[a-zA-ZäöüéÄÖÜÉİΣ例え\u{AD}\u{200B}ａ０0-9-]{1,10}[.。．][a-zA-Z]{2,4}",
            " {0,2}[a-z]{1,5}@\\[?[0-9.:]{1,15}\\]? {0,2}",
        ]
    }

    proptest! {
        #[test]
        fn any_control_character_is_rejected(
            before in any::<String>(),
            c in control_char(),
            after in any::<String>(),
        ) {
            let raw = format!("{before}{c}{after}");
            prop_assert_eq!(SubscriberEmail::parse(&raw), Err(EmailError::ControlCharacters));
        }

        #[test]
        fn accepted_values_keep_every_invariant(raw in candidate()) {
            if let Ok(email) = SubscriberEmail::parse(&raw) {
                let s = email.as_str();
                prop_assert!(!s.chars().any(char::is_control));
                prop_assert!(s.len() <= MAX_LEN);
                let domain = email.domain();
                prop_assert!(domain.contains('.'));
                prop_assert_eq!(domain.to_lowercase(), domain);
                prop_assert_eq!(SubscriberEmail::parse(s), Ok(email.clone()));
                prop_assert!(Address::from_str(s).is_ok());
            }
        }

        #[test]
        fn every_spelling_of_a_mailbox_has_its_key(
            local in "[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){0,2}",
            tag in "[a-z0-9.+-]{0,10}",
            upper in any::<bool>(),
            dots in prop::collection::vec(0usize..8, 0..4),
            gmail in any::<bool>(),
            googlemail in any::<bool>(),
        ) {
            let domain = match (gmail, googlemail) {
                (true, true) => "googlemail.com",
                (true, false) => "gmail.com",
                _ => "example.org",
            };
            let plain = SubscriberEmail::parse(&format!("{local}@{domain}")).unwrap();
            // A +tag, any case, and (at Gmail) dots between letters: the same mailbox.
            let mut spelled: String = local.clone();
            if gmail {
                for at in &dots {
                    let at = at % spelled.len();
                    if at > 0 && !spelled[..at].ends_with('.') && !spelled[at..].starts_with('.') {
                        spelled.insert(at, '.');
                    }
                }
            }
            let spelled = format!("{spelled}+{tag}@{domain}");
            let spelled = if upper { spelled.to_uppercase() } else { spelled };
            if let Ok(variant) = SubscriberEmail::parse(&spelled) {
                prop_assert_eq!(variant.mailbox_key(), plain.mailbox_key());
                prop_assert_eq!(variant.as_str(), spelled.as_str().replace(&domain.to_uppercase(), domain));
            }
            let key = plain.mailbox_key();
            prop_assert!(!key.contains('+'));
            prop_assert_eq!(key.to_lowercase(), key.clone());
            if gmail {
                prop_assert!(key.ends_with("@gmail.com"));
                prop_assert!(!key.trim_end_matches("@gmail.com").contains('.'));
            } else {
                // Elsewhere dots are part of the mailbox's name.
                prop_assert_eq!(key, plain.key());
            }
        }

        #[test]
        fn different_mailboxes_have_different_keys(
            a in "[a-z0-9]{1,8}",
            b in "[a-z0-9]{1,8}",
            domain in prop_oneof![Just("example.org"), Just("gmail.com"), Just("example.net")],
        ) {
            prop_assume!(a != b);
            let key = |local: &str| SubscriberEmail::parse(&format!("{local}@{domain}")).unwrap().mailbox_key();
            prop_assert_ne!(key(&a), key(&b));
        }

        #[test]
        fn ordinary_addresses_are_accepted(
            local in "[a-z0-9_%+-]{1,10}(\\.[a-z0-9_%+-]{1,9}){0,2}",
            host in "[a-z0-9]{1,20}",
            tld in "[a-z]{2,6}",
        ) {
            let raw = format!("{local}@{host}.{tld}");
            let email = SubscriberEmail::parse(&raw);
            prop_assert_eq!(email.map(|e| e.as_str().to_owned()), Ok(raw));
        }
    }
}
