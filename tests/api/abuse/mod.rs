//! Abuse and hostile input: subscription bombing, enumeration by answer or timing,
//! header and SMTP injection, where links and tokens may (not) end up, bursts of logins,
//! server-side fetches to private addresses, request bodies too large or too slow, IPv4
//! clients seen through IPv6, the per-mailbox limits, and double opt-in that a stranger
//! cannot widen.

mod bodies;
mod bombing;
mod enumeration;
mod fetch;
mod injection;
mod ipv4_mapped;
mod links;
mod login_burst;
mod mailbox;
mod optin;
