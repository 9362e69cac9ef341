//! One module per area of the public site.

pub mod archive;
pub mod assets;
pub mod confirm;
pub mod home;
pub mod metrics;
pub mod subscribe;
pub mod unsubscribe;
pub mod webhooks;
