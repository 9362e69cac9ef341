//! The urlencoded body of `POST /subscriptions`, decoded and validated by the code the
//! handler runs. A decoded form re-encodes to the same fields; an accepted signup names
//! only known newsletters, each once.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spacedigest::web::signup_input::{self, BodyKind, Rejection, SignupInput};
use spacedigest_fuzz_support::{catalogue, check_validation};

fuzz_target!(|data: &[u8]| {
    let input = match signup_input::decode(BodyKind::Form, data) {
        Ok(input) => input,
        Err(Rejection::Malformed(message)) => {
            assert!(message.ends_with('.'), "{message:?}");
            return;
        }
        Err(Rejection::Fields(errors)) => panic!("a form has no typed fields: {errors:?}"),
    };
    let mut pairs = vec![
        ("email", input.email.as_str()),
        ("name", input.name.as_str()),
    ];
    for slug in input.newsletters.iter().flatten() {
        pairs.push(("newsletters", slug));
    }
    if input.honeypot_filled {
        pairs.push(("website", "filled"));
    }
    let body = serde_urlencoded::to_string(&pairs).expect("strings always encode");
    let again: SignupInput = signup_input::parse_form(body.as_bytes())
        .unwrap_or_else(|e| panic!("{body:?} no longer decodes: {e:?}"));
    assert_eq!(again, input);
    check_validation(&input, &catalogue());
});
