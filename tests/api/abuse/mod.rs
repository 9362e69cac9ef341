//! Abuse and hostile input: subscription bombing, enumeration by answer or timing,
//! header and SMTP injection, where links and tokens may (not) end up, the per-mailbox
//! limits, and double opt-in that a stranger cannot widen.

mod bombing;
mod enumeration;
mod injection;
mod links;
mod mailbox;
mod optin;
