//! Tokens from links and cookies: confirmation-token shape, signed unsubscribe tokens and
//! the console's session cookie as read from a `Cookie` header.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spacedigest::tokens::{self, UnsubscribeScope, UnsubscribeSigner};
use spacedigest::web::admin::COOKIE_NAME;
use spacedigest::web::cookie_header;

fuzz_target!(|data: &[u8]| {
    let signer = UnsubscribeSigner::new("fuzzing-secret-key-fuzzing-secret-key");
    if let Ok(raw) = std::str::from_utf8(data) {
        if tokens::is_confirmation_token_shaped(raw) {
            assert_eq!(raw.len(), 43);
            assert!(
                raw.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            );
        }
        // A token that verifies is the one we would sign: no second spelling of it.
        if let Some(scope) = signer.verify(raw) {
            assert_eq!(signer.sign(scope), raw, "{scope:?}");
        }
    }
    tamper_with_a_signed_token(&signer, data);
    read_session_cookie(data);
});

/// The first nine bytes choose a scope and id, the rest alter the signed token; any
/// alteration must be refused.
fn tamper_with_a_signed_token(signer: &UnsubscribeSigner, data: &[u8]) {
    let Some((head, edits)) = data.split_first_chunk::<9>() else {
        return;
    };
    let id = i64::from_be_bytes(head[1..].try_into().expect("eight bytes"));
    let scope = if head[0] & 1 == 0 {
        UnsubscribeScope::Subscription(id)
    } else {
        UnsubscribeScope::Subscriber(id)
    };
    let token = signer.sign(scope);
    assert_eq!(signer.verify(&token), Some(scope));
    let mut altered = token.clone().into_bytes();
    for pair in edits.chunks(2) {
        let at = usize::from(pair[0]) % (altered.len() + 1);
        match pair.get(1) {
            Some(&byte) if at < altered.len() => altered[at] = byte,
            Some(&byte) => altered.push(byte),
            None => {
                altered.truncate(at);
            }
        }
    }
    if let Ok(altered) = String::from_utf8(altered)
        && altered != token
    {
        assert_eq!(
            signer.verify(&altered),
            None,
            "{token} altered to {altered:?}"
        );
    }
}

/// The console reads its session id and login token with `web::cookie_header::value`
/// (which hands the header lines to `value_in`). Whatever other cookies the browser sends
/// before it, a genuine session cookie is found, unless one of those is itself a readable
/// cookie of the same name (the first one wins).
fn read_session_cookie(data: &[u8]) {
    const SESSION: &str = "Xq3bQm9v0pZc8yF2s1Lk4tHn6RwE7uJiO5aG3dC_-Aa";
    let mut with_session = data.to_vec();
    with_session.extend_from_slice(format!("; {COOKIE_NAME}={SESSION}").as_bytes());
    let earlier = cookie_header::value_in(std::iter::once(data), COOKIE_NAME);
    let found = cookie_header::value_in(std::iter::once(&with_session[..]), COOKIE_NAME);
    assert_eq!(found, Some(earlier.unwrap_or_else(|| SESSION.to_owned())));
    // The same header split over two lines reads the same.
    let found_in_two = cookie_header::value_in(
        [data, format!("{COOKIE_NAME}={SESSION}").as_bytes()].into_iter(),
        COOKIE_NAME,
    );
    assert_eq!(found_in_two, found);
}
