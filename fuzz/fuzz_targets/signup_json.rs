//! The JSON body of `POST /subscriptions`, decoded and validated by the code the handler
//! runs. A decoded body re-serialises to the same fields; an accepted signup names only
//! known newsletters, each once.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use spacedigest::web::signup_input::{self, BodyKind, Rejection};
use spacedigest_fuzz_support::{catalogue, check_validation};

fuzz_target!(|data: &[u8]| {
    let input = match signup_input::decode(BodyKind::Json, data) {
        Ok(input) => input,
        Err(Rejection::Malformed(message)) => {
            assert!(message.ends_with('.'), "{message:?}");
            return;
        }
        Err(Rejection::Fields(errors)) => {
            assert!(!errors.is_empty(), "a refusal without a reason");
            return;
        }
    };
    let mut body = json!({ "email": input.email, "name": input.name });
    if let Some(newsletters) = &input.newsletters {
        body["newsletters"] = json!(newsletters);
    }
    if input.honeypot_filled {
        body["website"] = json!("filled");
    }
    let again = signup_input::parse_json(body.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{body} no longer decodes: {e:?}"));
    assert_eq!(again, input);
    check_validation(&input, &catalogue());
});
