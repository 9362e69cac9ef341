//! Where server-side fetches (feeds, `stories import URL`, and later webhooks) may
//! connect: by default only to public addresses; `SPACEDIGEST_FETCH_ALLOW_PRIVATE` or an
//! allow-list opens the rest for deployments that poll feeds on their own network.

use ipnet::IpNet;

use serde::Deserialize;

use super::ConfigError;
use super::values::Networks;

/// `SPACEDIGEST_FETCH_ALLOW_PRIVATE` and `SPACEDIGEST_FETCH_ALLOWED_NETWORKS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchSettings {
    /// `SPACEDIGEST_FETCH_ALLOW_PRIVATE`: `true` lets fetches reach any address.
    pub allow_private: bool,
    /// `SPACEDIGEST_FETCH_ALLOWED_NETWORKS`: comma-separated addresses or CIDR ranges
    /// fetches may reach even though they are not public.
    pub allowed_networks: Vec<IpNet>,
}

/// The fetch settings as written.
#[derive(Debug, Deserialize)]
pub(super) struct RawFetch {
    #[serde(default)]
    fetch_allow_private: bool,
    #[serde(default)]
    fetch_allowed_networks: Networks,
}

impl RawFetch {
    pub(super) fn validate(self) -> Result<FetchSettings, ConfigError> {
        // A range written with host bits set (10.1.2.3/8) means its network.
        let allowed_networks = self
            .fetch_allowed_networks
            .0
            .iter()
            .map(IpNet::trunc)
            .collect();
        Ok(FetchSettings {
            allow_private: self.fetch_allow_private,
            allowed_networks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::load_with;

    #[test]
    fn fetches_are_public_only_unless_a_setting_opens_them() {
        let s = load_with(&[]).unwrap();
        assert!(!s.fetch.allow_private);
        assert!(s.fetch.allowed_networks.is_empty());

        let s = load_with(&[
            ("SPACEDIGEST_FETCH_ALLOW_PRIVATE", "true"),
            (
                "SPACEDIGEST_FETCH_ALLOWED_NETWORKS",
                " 10.1.2.3/8, 192.168.7.9 ,fd00::/8,",
            ),
        ])
        .unwrap();
        assert!(s.fetch.allow_private);
        let shown: Vec<String> = s
            .fetch
            .allowed_networks
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.168.7.9/32", "fd00::/8"]);

        for (variable, value) in [
            ("SPACEDIGEST_FETCH_ALLOW_PRIVATE", "perhaps"),
            ("SPACEDIGEST_FETCH_ALLOWED_NETWORKS", "10.0.0.0/33"),
            ("SPACEDIGEST_FETCH_ALLOWED_NETWORKS", "intranet.example"),
        ] {
            let err = load_with(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable, "{value}");
        }
    }
}
