//! An HTTP client that connects only where the policy allows: the URL's own address is
//! checked before the request, host names are resolved by a resolver that hands the
//! connector only the addresses it checked (so no second lookup can answer otherwise),
//! and every redirect hop is checked the same way. Proxies are off: a proxy would make
//! the connection on our behalf to wherever the URL says.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::{Attempt, Policy as RedirectPolicy};
use reqwest::{Method, RequestBuilder};
use url::{Host, Url};

use super::policy::{AddressPolicy, Refusal, Refused};

/// An HTTP client for server-side fetches; cheap to clone, meant to be shared.
#[derive(Debug, Clone)]
pub struct GuardedClient {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
}

/// Why a redirect was not followed.
#[derive(Debug, thiserror::Error)]
enum HopError {
    #[error("{0}")]
    Refused(Refusal),
    #[error("more than {0} redirects")]
    TooMany(usize),
    #[error("a redirect to a URL that is not http or https")]
    NotHttp,
}

/// A host name whose every address the policy refused.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to refused addresses ({refusal})")]
struct NameRefused {
    host: String,
    refusal: Refusal,
}

impl GuardedClient {
    /// Finishes `builder` (timeouts, user agent…) with the guard: the checking resolver,
    /// a redirect policy that checks each hop and follows at most `max_redirects`, and
    /// no proxy. Anything `builder` set for those is replaced.
    pub fn build(
        builder: reqwest::ClientBuilder,
        policy: AddressPolicy,
        max_redirects: usize,
    ) -> reqwest::Result<Self> {
        let policy = Arc::new(policy);
        let hops = Arc::clone(&policy);
        let client = builder
            .no_proxy()
            .dns_resolver(Arc::new(CheckingResolver {
                policy: Arc::clone(&policy),
            }))
            .redirect(RedirectPolicy::custom(move |attempt| {
                follow(&hops, attempt, max_redirects)
            }))
            .build()?;
        Ok(Self { client, policy })
    }

    /// A request to `url`, or why it may not be made. Send it as usual; a refusal found
    /// later (a host name's addresses, a redirect) is in the error: see [`Self::refusal`].
    pub fn request(&self, method: Method, url: &Url) -> Result<RequestBuilder, Refused> {
        self.policy.check_url(url)?;
        Ok(self.client.request(method, url.clone()))
    }

    /// A GET of `url`, or why it may not be made.
    pub fn get(&self, url: &Url) -> Result<RequestBuilder, Refused> {
        self.request(Method::GET, url)
    }

    /// The refusal behind a failed request to `requested`, if the guard stopped it.
    pub fn refusal(requested: &Url, error: &reqwest::Error) -> Option<Refused> {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = source {
            if let Some(hop) = e.downcast_ref::<HopError>() {
                return match hop {
                    HopError::Refused(refusal) => Some(Refused::Redirect { refusal: *refusal }),
                    HopError::TooMany(_) | HopError::NotHttp => None,
                };
            }
            if let Some(name) = e.downcast_ref::<NameRefused>() {
                // A name the server sent in a redirect is not repeated to the operator.
                let asked = matches!(requested.host(), Some(Host::Domain(h)) if h == name.host);
                return Some(if asked {
                    Refused::Name {
                        host: name.host.clone(),
                        refusal: name.refusal,
                    }
                } else {
                    Refused::Redirect {
                        refusal: name.refusal,
                    }
                });
            }
            source = e.source();
        }
        None
    }
}

/// Resolves with the system resolver and keeps only the addresses the policy allows;
/// the connector connects to exactly these.
struct CheckingResolver {
    policy: Arc<AddressPolicy>,
}

impl Resolve for CheckingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut first_refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(refusal) => {
                        first_refused.get_or_insert(refusal);
                        false
                    }
                })
                .collect();
            match first_refused {
                Some(refusal) if allowed.is_empty() => {
                    Err(Box::new(NameRefused { host, refusal }) as _)
                }
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

fn follow(
    policy: &AddressPolicy,
    attempt: Attempt<'_>,
    max_redirects: usize,
) -> reqwest::redirect::Action {
    // The first URL in `previous` is the one asked for, not a redirect.
    if attempt.previous().len() > max_redirects {
        return attempt.error(HopError::TooMany(max_redirects));
    }
    let next = attempt.url();
    if !matches!(next.scheme(), "http" | "https") {
        return attempt.error(HopError::NotHttp);
    }
    // Names are checked by the resolver when the hop connects.
    match policy.check_url(next) {
        Ok(()) => attempt.follow(),
        Err(refused) => attempt.error(HopError::Refused(refused.refusal())),
    }
}
