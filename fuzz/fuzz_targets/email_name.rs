//! `SubscriberEmail::parse` and `SubscriberName::parse`: what a reader types into the form.
//! Accepted values are stable under re-parsing and can never break a mail header.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spacedigest::domain::{SubscriberEmail, SubscriberName};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let email = SubscriberEmail::parse(raw).ok();
    if let Some(email) = &email {
        let stored = email.as_str();
        assert!(stored.len() <= 254, "{stored:?} is over 254 bytes");
        assert!(!stored.chars().any(char::is_control), "{stored:?}");
        // What we store parses to itself: reading it back never changes or refuses it.
        assert_eq!(
            SubscriberEmail::parse(stored).as_ref(),
            Ok(email),
            "{raw:?}"
        );
        // The uniqueness key is itself a valid address with the same key.
        let key = email.key();
        let again = SubscriberEmail::parse(&key)
            .unwrap_or_else(|e| panic!("the key {key:?} of {raw:?} is refused: {e:?}"));
        assert_eq!(again.key(), key);
        let header = email.to_mailbox(None).to_string();
        assert!(!header.contains(['\r', '\n']), "{header:?}");
    }
    match SubscriberName::parse(raw) {
        Ok(Some(name)) => {
            let kept = name.as_str();
            assert!(kept.chars().count() <= 100, "{kept:?}");
            assert_eq!(kept, kept.trim());
            assert!(!kept.chars().any(char::is_control), "{kept:?}");
            assert_eq!(
                SubscriberName::parse(kept).as_ref(),
                Ok(&Some(name.clone()))
            );
            let reader = email.unwrap_or_else(|| {
                SubscriberEmail::parse("reader@example.com").expect("a plain address")
            });
            // The name becomes the display name of the `To:` header.
            let header = reader.to_mailbox(Some(&name)).to_string();
            assert!(!header.contains(['\r', '\n']), "{header:?}");
        }
        Ok(None) => assert!(raw.trim().is_empty(), "{raw:?} became no name"),
        Err(_) => {}
    }
});
