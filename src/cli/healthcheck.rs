//! `spacedigest healthcheck`: asks a running `serve` for `GET /health_check`, for
//! container health checks in images without curl.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};

/// How long the whole check may take: a health check that hangs is a failed one.
const TIMEOUT: Duration = Duration::from_secs(3);

/// The local URL of `/health_check` for a server bound to `listen`: an unspecified
/// address (`0.0.0.0`, `[::]`) is reached through loopback.
pub fn local_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/health_check", SocketAddr::new(ip, listen.port()))
}

/// GETs `url`; succeeds only on a 2xx answer within the timeout.
pub async fn run(url: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build the HTTP client")?;
    let answer = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("no answer from {url}"))?;
    let status = answer.status();
    if !status.is_success() {
        bail!("{url} answered {status}");
    }
    println!("healthy: {url} answered {status}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_checked_through_loopback() {
        let url = |s: &str| local_url(s.parse().unwrap());
        assert_eq!(url("0.0.0.0:8080"), "http://127.0.0.1:8080/health_check");
        assert_eq!(url("[::]:8080"), "http://[::1]:8080/health_check");
        assert_eq!(url("10.1.2.3:9000"), "http://10.1.2.3:9000/health_check");
    }
}
