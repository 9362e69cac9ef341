//! Abuse and hostile input: subscription bombing, enumeration by answer or timing,
//! header and SMTP injection, and where links and tokens may (not) end up.

mod bombing;
mod enumeration;
mod injection;
mod links;
