//! One cookie out of the `Cookie` header. actix's `HttpRequest::cookie` gives up on the
//! whole header when any cookie in it is malformed, and a browser sends every cookie of the
//! host, whatever page or port set it: one nameless (`theme`) or badly encoded (`a=%ff`)
//! cookie from a neighbour would sign the operator out and refuse every login as forged.

use actix_web::HttpRequest;
use actix_web::cookie::Cookie;
use actix_web::http::header::COOKIE;

/// The value of the first readable cookie called `name`; unreadable ones are skipped.
pub fn value(req: &HttpRequest, name: &str) -> Option<String> {
    value_in(req.headers().get_all(COOKIE).map(|h| h.as_bytes()), name)
}

/// [`value`] for the raw `Cookie` header lines, in order.
pub fn value_in<'a>(headers: impl Iterator<Item = &'a [u8]>, name: &str) -> Option<String> {
    headers
        .flat_map(|header| header.split(|b| *b == b';'))
        .filter_map(|pair| std::str::from_utf8(pair).ok())
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        // The same decoding as actix's own reader, so well-formed cookies read the same.
        .filter_map(|pair| Cookie::parse_encoded(pair).ok())
        .find(|cookie| cookie.name() == name)
        .map(|cookie| cookie.value().to_owned())
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;
    use actix_web::test::TestRequest;
    use proptest::prelude::*;

    use super::*;

    const TOKEN: &str = "Xq3bQm9v0pZc8yF2s1Lk4tHn6RwE7uJiO5aG3dC_-Aa";

    fn request(headers: &[&[u8]]) -> HttpRequest {
        let mut req = TestRequest::default();
        for header in headers {
            req = req.append_header((COOKIE, HeaderValue::from_bytes(header).unwrap()));
        }
        req.to_http_request()
    }

    #[test]
    fn a_malformed_neighbour_does_not_hide_the_session() {
        // Found by the tokens fuzz target: each of these made actix drop every cookie.
        for header in [
            format!("theme; spacedigest_session={TOKEN}"),
            format!("=x; spacedigest_session={TOKEN}"),
            format!("tracking=%ff%fe; spacedigest_session={TOKEN}"),
            format!("spacedigest_session={TOKEN}; a"),
        ] {
            let req = request(&[header.as_bytes()]);
            assert_eq!(
                req.cookie("spacedigest_session"),
                None,
                "actix reads {header:?}"
            );
            assert_eq!(
                value(&req, "spacedigest_session").as_deref(),
                Some(TOKEN),
                "{header:?}"
            );
        }
        let latin1 = request(&[
            b"name=J\xf6rg",
            format!("spacedigest_session={TOKEN}").as_bytes(),
        ]);
        assert_eq!(
            value(&latin1, "spacedigest_session").as_deref(),
            Some(TOKEN)
        );
    }

    #[test]
    fn reads_like_actix_where_actix_reads() {
        let req = request(&[b"a=1; spacedigest_session=x%20y; spacedigest_session=second"]);
        assert_eq!(value(&req, "spacedigest_session").as_deref(), Some("x y"));
        assert_eq!(value(&req, "a").as_deref(), Some("1"));
        assert_eq!(value(&req, "absent"), None);
        assert_eq!(value(&request(&[]), "a"), None);
    }

    proptest! {
        #[test]
        fn the_first_readable_cookie_wins(others in "[ -~]{0,60}") {
            let header = format!("{others}; spacedigest_session={TOKEN}");
            let found = value(&request(&[header.as_bytes()]), "spacedigest_session");
            let earlier = value(&request(&[others.as_bytes()]), "spacedigest_session");
            prop_assert_eq!(found, Some(earlier.unwrap_or_else(|| TOKEN.to_owned())));
        }
    }
}
