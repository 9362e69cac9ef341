//! Everything the server fetches on its own (feeds, `stories import URL`, and webhooks
//! to come) goes through one rule: only public addresses, unless the settings open
//! others, checked in every spelling of the address, on the address actually connected
//! to, and on every redirect hop.

mod address;
mod client;
mod policy;

pub use address::{AddressKind, special_kind};
pub use client::GuardedClient;
pub use policy::{AddressPolicy, Refusal, Refused};
