//! Abuse and hostile input: subscription bombing, enumeration by answer or timing,
//! header and SMTP injection, where links and tokens may (not) end up, bursts of logins,
//! server-side fetches to private addresses, and request bodies too large or too slow.

mod bodies;
mod bombing;
mod enumeration;
mod fetch;
mod injection;
mod links;
mod login_burst;
