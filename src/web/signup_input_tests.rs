use super::*;
use proptest::prelude::*;

fn newsletter(id: i64, slug: &str) -> Newsletter {
    Newsletter {
        id,
        slug: slug.to_owned(),
        title: slug.to_owned(),
        description: String::new(),
        send_at: "07:00".to_owned(),
        timezone: "UTC".to_owned(),
        created_at: chrono::DateTime::UNIX_EPOCH.naive_utc(),
    }
}

fn catalogue() -> Vec<Newsletter> {
    vec![
        newsletter(1, "launch-weekly"),
        newsletter(2, NewsletterSlug::DEFAULT),
        newsletter(3, "mars-notes"),
    ]
}

fn form_body(pairs: &[(&str, &str)]) -> Vec<u8> {
    serde_urlencoded::to_string(pairs).unwrap().into_bytes()
}

fn fields(rejection: Result<SignupInput, Rejection>) -> FormErrors {
    match rejection {
        Err(Rejection::Fields(errors)) => errors,
        other => panic!("expected field errors, got {other:?}"),
    }
}

#[test]
fn content_types_pick_the_decoder() {
    for (content_type, kind) in [
        ("application/x-www-form-urlencoded", Some(BodyKind::Form)),
        (
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
            Some(BodyKind::Form),
        ),
        ("application/json", Some(BodyKind::Json)),
        (" application/json ; charset=utf-8", Some(BodyKind::Json)),
        ("multipart/form-data; boundary=x", None),
        ("text/plain", None),
        ("", None),
    ] {
        assert_eq!(
            BodyKind::of_content_type(content_type),
            kind,
            "{content_type:?}"
        );
    }
}

#[test]
fn a_browser_form_decodes_to_its_fields() {
    let body = b"email=reader%40example.com&name=J%C3%B6rg+Smith&newsletters=mars-notes&newsletters=launch-weekly&website=";
    let input = parse_form(body).unwrap();
    assert_eq!(
        input,
        SignupInput {
            email: "reader@example.com".into(),
            name: "Jörg Smith".into(),
            newsletters: Some(vec!["mars-notes".into(), "launch-weekly".into()]),
            honeypot_filled: false,
        }
    );
    let request = validate(&input, &catalogue(), None).unwrap();
    let slugs: Vec<&str> = request
        .newsletters
        .iter()
        .map(|n| n.slug.as_str())
        .collect();
    assert_eq!(slugs, ["mars-notes", "launch-weekly"]);
    assert_eq!(request.email.as_str(), "reader@example.com");
    assert_eq!(request.name.unwrap().as_str(), "Jörg Smith");
}

#[test]
fn broken_forms_are_malformed_with_a_sentence() {
    for (body, message) in [
        (
            &b"email=%zz"[..],
            "The form data has a broken percent-encoding.",
        ),
        (b"email=\xff", "The form data is not valid UTF-8."),
        (
            b"email=a&email=b",
            "The field email was given more than once.",
        ),
        (b"name=a&name=b", "The field name was given more than once."),
    ] {
        assert_eq!(
            parse_form(body),
            Err(Rejection::Malformed(message.into())),
            "{body:?}"
        );
    }
}

#[test]
fn json_fields_of_the_wrong_type_are_named() {
    let errors = fields(parse_json(
        br#"{"email": 7, "name": [], "newsletters": {}}"#,
    ));
    assert_eq!(errors.email, ["The email must be a string."]);
    assert_eq!(errors.name, ["The name must be a string."]);
    assert_eq!(
        errors.newsletters,
        ["Newsletters must be a list of newsletter names."]
    );
    let errors = fields(parse_json(
        br#"{"email": "a@b.com", "newsletters": ["x", 1]}"#,
    ));
    assert_eq!(
        errors.newsletters,
        ["Newsletters must be a list of newsletter names."]
    );
    for body in [&b"[]"[..], b"\"a@b.com\"", b"null", b"7"] {
        assert!(
            matches!(parse_json(body), Err(Rejection::Malformed(m)) if m.contains("JSON object")),
            "{body:?}"
        );
    }
    assert!(matches!(
        parse_json(b"{\"email\":"),
        Err(Rejection::Malformed(m)) if m.starts_with("The body is not valid JSON")
    ));
}

#[test]
fn json_single_newsletter_and_honeypot() {
    let input =
        parse_json(br#"{"email":"a@b.com","newsletters":"mars-notes","website":" "}"#).unwrap();
    assert_eq!(input.newsletters, Some(vec!["mars-notes".into()]));
    assert!(!input.honeypot_filled, "whitespace is not filling the trap");
    for trap in [r#""http://spam""#, "1", "true", "[]", "{}"] {
        let body = format!(r#"{{"email":"a@b.com","website":{trap}}}"#);
        assert!(
            parse_json(body.as_bytes()).unwrap().honeypot_filled,
            "{trap}"
        );
    }
    assert!(
        parse_form(b"email=a%40b.com&website=&website=x")
            .unwrap()
            .honeypot_filled
    );
}

#[test]
fn validation_explains_every_field_at_once() {
    let input = SignupInput {
        email: "not an address".into(),
        name: "x".repeat(101),
        newsletters: Some(vec!["nope".into(), "mars-notes".into()]),
        honeypot_filled: false,
    };
    let errors = validate(&input, &catalogue(), None).unwrap_err();
    assert_eq!(errors.email.len(), 1);
    assert_eq!(errors.name.len(), 1);
    assert_eq!(
        errors.newsletters,
        ["There is no newsletter called \"nope\"."]
    );

    let none_chosen = SignupInput {
        email: "a@b.com".into(),
        newsletters: Some(vec![String::new()]),
        ..SignupInput::default()
    };
    assert_eq!(
        validate(&none_chosen, &catalogue(), None)
            .unwrap_err()
            .newsletters,
        ["Choose at least one newsletter."]
    );
    let too_many = SignupInput {
        email: "a@b.com".into(),
        newsletters: Some(vec!["mars-notes".into(); MAX_NEWSLETTERS + 1]),
        ..SignupInput::default()
    };
    assert_eq!(
        validate(&too_many, &catalogue(), None)
            .unwrap_err()
            .newsletters,
        ["That is more newsletters than we have."]
    );
    let nothing_to_join = SignupInput {
        email: "a@b.com".into(),
        ..SignupInput::default()
    };
    assert_eq!(
        validate(&nothing_to_join, &[], None).unwrap_err().general,
        ["There is no newsletter to subscribe to yet."]
    );
}

#[test]
fn omitted_newsletters_mean_the_default_one() {
    let input = parse_form(b"email=a%40b.com").unwrap();
    let request = validate(&input, &catalogue(), Some("192.0.2.1".into())).unwrap();
    assert_eq!(request.newsletters.len(), 1);
    assert_eq!(request.newsletters[0].slug, NewsletterSlug::DEFAULT);
    assert_eq!(request.ip.as_deref(), Some("192.0.2.1"));
    // Without a newsletter called space-daily, the first one is the default.
    let others = vec![newsletter(9, "mars-notes")];
    assert_eq!(
        validate(&input, &others, None).unwrap().newsletters[0].id,
        9
    );
}

#[test]
fn a_long_unknown_name_is_cut_in_the_message() {
    let input = SignupInput {
        email: "a@b.com".into(),
        newsletters: Some(vec!["é".repeat(500)]),
        ..SignupInput::default()
    };
    let errors = validate(&input, &catalogue(), None).unwrap_err();
    assert_eq!(
        errors.newsletters,
        [format!(
            "There is no newsletter called \"{}\".",
            "é".repeat(60)
        )]
    );
}

/// Addresses the parser accepts unchanged.
fn address() -> impl Strategy<Value = String> {
    (
        "[a-z0-9][a-z0-9+_-]{0,15}",
        "[a-z][a-z0-9]{0,10}",
        "[a-z]{2,6}",
    )
        .prop_map(|(local, host, tld)| format!("{local}@{host}.{tld}"))
}

fn slugs() -> impl Strategy<Value = Option<Vec<String>>> {
    proptest::option::of(proptest::collection::vec(
        prop_oneof![
            Just("launch-weekly".to_owned()),
            Just("space-daily".to_owned()),
            Just("mars-notes".to_owned()),
        ],
        1..5,
    ))
}

proptest! {
    #[test]
    fn decoding_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        for kind in [BodyKind::Form, BodyKind::Json] {
            if let Ok(input) = decode(kind, &body) {
                let _ = validate(&input, &catalogue(), None);
            }
        }
    }

    #[test]
    fn json_shaped_noise_never_panics(body in r#"[{}\[\]",:0-9a-z\\ ]{0,80}"#) {
        if let Ok(input) = parse_json(body.as_bytes()) {
            let _ = validate(&input, &catalogue(), None);
        }
    }

    #[test]
    fn any_fields_round_trip_through_the_form(
        email in "\\PC{0,40}",
        name in "\\PC{0,40}",
        newsletters in proptest::option::of(proptest::collection::vec("\\PC{0,20}", 1..4)),
        website in "\\PC{0,10}",
    ) {
        let mut pairs = vec![("email", email.as_str()), ("name", name.as_str())];
        for slug in newsletters.iter().flatten() {
            pairs.push(("newsletters", slug));
        }
        pairs.push(("website", &website));
        let input = parse_form(&form_body(&pairs)).unwrap();
        prop_assert_eq!(input, SignupInput {
            email,
            name,
            newsletters,
            honeypot_filled: !website.trim().is_empty(),
        });
    }

    #[test]
    fn form_and_json_of_one_signup_decode_alike(
        email in "\\PC{0,40}",
        name in proptest::option::of("\\PC{0,40}"),
        newsletters in proptest::option::of(proptest::collection::vec("\\PC{0,20}", 1..4)),
    ) {
        let mut pairs = vec![("email", email.as_str())];
        let mut json = serde_json::json!({ "email": email });
        if let Some(name) = &name {
            pairs.push(("name", name));
            json["name"] = name.as_str().into();
        }
        if let Some(newsletters) = &newsletters {
            pairs.extend(newsletters.iter().map(|slug| ("newsletters", slug.as_str())));
            json["newsletters"] = newsletters.clone().into();
        }
        let from_form = parse_form(&form_body(&pairs)).unwrap();
        let from_json = parse_json(json.to_string().as_bytes()).unwrap();
        prop_assert_eq!(&from_form, &from_json);
        let all = catalogue();
        prop_assert_eq!(
            validate(&from_form, &all, None).map(|r| (r.email, r.name, r.newsletters.len())),
            validate(&from_json, &all, None).map(|r| (r.email, r.name, r.newsletters.len()))
        );
    }

    #[test]
    fn a_valid_signup_names_each_known_newsletter_once(
        email in address(),
        newsletters in slugs(),
    ) {
        let body = serde_json::json!({ "email": email, "newsletters": newsletters });
        let input = parse_json(body.to_string().as_bytes()).unwrap();
        let request = validate(&input, &catalogue(), None).unwrap();
        prop_assert_eq!(request.email.as_str(), email.as_str());
        let mut expected: Vec<&str> = Vec::new();
        for slug in newsletters.iter().flatten() {
            if !expected.contains(&slug.as_str()) {
                expected.push(slug);
            }
        }
        if newsletters.is_none() {
            expected.push(NewsletterSlug::DEFAULT);
        }
        let chosen: Vec<&str> = request.newsletters.iter().map(|n| n.slug.as_str()).collect();
        prop_assert_eq!(chosen, expected);
    }

    #[test]
    fn a_refused_signup_always_says_why(
        email in prop_oneof![address(), "\\PC{0,30}"],
        name in "\\PC{0,120}",
        newsletters in proptest::option::of(proptest::collection::vec("[a-z-]{0,12}", 0..4)),
    ) {
        let input = SignupInput { email, name, newsletters, honeypot_filled: false };
        if let Err(errors) = validate(&input, &catalogue(), None) {
            prop_assert!(!errors.is_empty());
        }
    }
}
