//! Abuse and hostile input: subscription bombing, enumeration by answer or timing,
//! header and SMTP injection, where links and tokens may (not) end up, and bursts of
//! logins.

mod bombing;
mod enumeration;
mod injection;
mod links;
mod login_burst;
