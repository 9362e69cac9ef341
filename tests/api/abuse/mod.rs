//! Abuse and hostile input: subscription bombing, enumeration by answer or timing,
//! header and SMTP injection, where links and tokens may (not) end up, bursts of logins,
//! and server-side fetches to private addresses.

mod bombing;
mod enumeration;
mod fetch;
mod injection;
mod links;
mod login_burst;
