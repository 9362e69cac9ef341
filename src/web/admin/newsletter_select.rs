//! The newsletter a console form works on: the options of its `<select>`, and the lookup
//! of the newsletter a form or a query names. The stories, feeds and import pages share it.

use super::{Console, ConsoleError};
use crate::db;
use crate::db::newsletters::{self, Newsletter};
use crate::domain::NewsletterSlug;

/// One `<option>` of a newsletter `<select>`.
#[derive(Debug, Clone)]
pub struct NewsletterOption {
    pub slug: String,
    pub label: String,
    pub selected: bool,
}

/// The options for a newsletter `<select>`, `selected` (a slug) marked.
pub fn options(all: &[Newsletter], selected: &str) -> Vec<NewsletterOption> {
    all.iter()
        .map(|n| NewsletterOption {
            slug: n.slug.clone(),
            label: format!("{} ({}, {})", n.title, n.slug, n.timezone),
            selected: n.slug == selected,
        })
        .collect()
}

/// Every newsletter, oldest (the default) first.
pub async fn all(console: &Console) -> Result<Vec<Newsletter>, ConsoleError> {
    Ok(db::run(console.pool(), newsletters::all).await?)
}

/// The newsletter a form or query names by slug (empty: the default one), from `all`.
pub fn by_slug<'a>(all: &'a [Newsletter], slug: &str) -> Result<&'a Newsletter, String> {
    let slug = slug.trim();
    let slug = if slug.is_empty() {
        NewsletterSlug::DEFAULT
    } else {
        slug
    };
    all.iter()
        .find(|n| n.slug == slug)
        .ok_or_else(|| format!("There is no newsletter \"{slug}\"."))
}
