//! IPv4 clients of a dual-stack listener (`[::]`) arrive as IPv4-mapped IPv6 addresses,
//! `::ffff:a.b.c.d`: they are the IPv4 address they are, for trusted proxies and for
//! per-IP limits, and so are such addresses inside `X-Forwarded-For`.

use std::net::{IpAddr, SocketAddr};

use crate::support::app::{Mail, TestApp, spawn_app_listening_on, unique_email, urlencode};

const PER_MINUTE: u32 = 2;

/// Whether this machine gives a `[::]` listener IPv4 clients too.
fn dual_stack_available() -> bool {
    let Ok(listener) = std::net::TcpListener::bind("[::]:0") else {
        return false;
    };
    let port = listener.local_addr().unwrap().port();
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// One signup through a client bound to `from`, claiming `forwarded_for`; the status.
async fn signup(app: &TestApp, from: IpAddr, forwarded_for: Option<&str>) -> u16 {
    let client = reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap();
    let mut request = client
        .post(format!("{}/subscriptions", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("email={}", urlencode(&unique_email())));
    if let Some(forwarded_for) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded_for);
    }
    request.send().await.unwrap().status().as_u16()
}

async fn signups(app: &TestApp, from: &str, forwarded_for: &[Option<&str>]) -> Vec<u16> {
    let from: IpAddr = from.parse().unwrap();
    let mut statuses = Vec::new();
    for entry in forwarded_for {
        statuses.push(signup(app, from, *entry).await);
    }
    statuses
}

#[tokio::test]
#[cfg_attr(
    not(spacedigest_dual_stack),
    ignore = "needs a dual-stack [::] listener, which this machine lacked when the tests were \
              built (build.rs); web::client_ip's unit tests cover the canonicalisation"
)]
async fn ipv4_mapped_peers_and_forwarded_addresses_count_as_their_ipv4_addresses() {
    assert!(
        dual_stack_available(),
        "this machine has no dual-stack [::] listener (it had one when the tests were built)"
    );
    let listen: SocketAddr = "[::]:0".parse().unwrap();
    let app = spawn_app_listening_on(listen, Mail::Server, |s| {
        s.signup.rate_per_minute = PER_MINUTE;
        // As SPACEDIGEST_TRUSTED_PROXIES=127.0.0.1 parses.
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let proxy = "127.0.0.1";
    // The proxy connects as ::ffff:127.0.0.1: trusted, so each client it names is limited alone.
    let through_proxy = signups(&app, proxy, &[Some("203.0.113.5"); 3]).await;
    let another_client = signups(&app, proxy, &[Some("203.0.113.6")]).await;
    // A proxy may write a client either way: one client, one allowance.
    let mixed_forms = signups(
        &app,
        proxy,
        &[
            Some("::ffff:198.51.100.7"),
            Some("::ffff:198.51.100.7"),
            Some("198.51.100.7"),
        ],
    )
    .await;
    let next_mapped = signups(&app, proxy, &[Some("::ffff:198.51.100.8")]).await;
    // Clients connecting directly (not proxies: nothing they forward is believed) are
    // their own IPv4 addresses, not one IPv6 network that every IPv4 client shares.
    let direct = signups(&app, "127.0.0.2", &[None, None, Some("192.0.2.1")]).await;
    let direct_other = signups(&app, "127.0.0.3", &[None]).await;
    crate::support::figures::report(
        "ipv4-mapped",
        &format!(
            "dual-stack [::] listener, SPACEDIGEST_TRUSTED_PROXIES=127.0.0.1, {PER_MINUTE} signups \
             a minute per IP: through the proxy (seen as ::ffff:127.0.0.1) for 203.0.113.5 \
             {through_proxy:?}, then 203.0.113.6 {another_client:?}; forwarded as \
             ::ffff:198.51.100.7 twice then 198.51.100.7 {mixed_forms:?}, then \
             ::ffff:198.51.100.8 {next_mapped:?}; directly from 127.0.0.2 {direct:?} (the last \
             forging X-Forwarded-For), then from 127.0.0.3 {direct_other:?}"
        ),
    );
    assert_eq!(through_proxy, [200, 200, 429]);
    assert_eq!(
        another_client,
        [200],
        "the proxy at ::ffff:127.0.0.1 is trusted"
    );
    assert_eq!(
        mixed_forms,
        [200, 200, 429],
        "::ffff:a.b.c.d and a.b.c.d are one client"
    );
    assert_eq!(
        next_mapped,
        [200],
        "each mapped address has its own allowance"
    );
    assert_eq!(direct, [200, 200, 429]);
    assert_eq!(
        direct_other,
        [200],
        "IPv4 clients do not share one allowance"
    );
}
