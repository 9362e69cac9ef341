//! Renders a day's digest: askama templates, CSS inlined, every link absolute.

use chrono::NaiveDate;

use super::zone;
use crate::config::Settings;
use crate::db::newsletters::Newsletter;
use crate::db::stories::Story;
use crate::mail::RenderedEmail;
use crate::mail::templates::{DigestEmail, DigestStory};

/// Stands for the reader's own unsubscribe link in a stored issue. Only URL-safe
/// characters, so it survives HTML escaping and quoted-printable unchanged.
pub const UNSUBSCRIBE_PLACEHOLDER: &str = "urn:spacedigest:unsubscribe";

/// A rendered issue and the story snapshot the archive shows.
#[derive(Debug, Clone)]
pub struct RenderedIssue {
    /// Subject and bodies.
    pub email: RenderedEmail,
    /// The stories as JSON.
    pub stories_json: String,
}

/// Renders the digest of `stories` with `unsubscribe_url` in the footer.
pub fn render_digest(
    settings: &Settings,
    newsletter: &Newsletter,
    date: NaiveDate,
    stories: &[Story],
    unsubscribe_url: &str,
) -> askama::Result<RenderedIssue> {
    let tz = zone(newsletter);
    let stories: Vec<DigestStory> = stories
        .iter()
        .map(|story| {
            let published = story.published_at.and_utc().with_timezone(&tz);
            // Summaries were sanitised on import; sanitise again so nothing stored
            // earlier, or by hand, can carry script into an email.
            let summary_html = crate::feeds::sanitise::summary_html(&story.summary_html, None);
            DigestStory {
                title: story.title.clone(),
                url: story.url.clone(),
                summary_text: html_to_text(&summary_html),
                summary_html,
                source: story.source.clone(),
                published: published.format("%H:%M %Z").to_string(),
            }
        })
        .collect();
    let email = DigestEmail {
        newsletter_title: newsletter.title.clone(),
        date_label: date.format("%-d %B %Y").to_string(),
        archive_url: settings
            .server
            .link(&format!("/archive/{}/{date}", newsletter.slug)),
        home_url: settings.server.link("/"),
        postal_address: settings.digest.postal_address.clone(),
        unsubscribe_url: unsubscribe_url.to_owned(),
        stories,
    };
    let stories_json =
        serde_json::to_string(&email.stories).map_err(|e| askama::Error::Custom(Box::new(e)))?;
    Ok(RenderedIssue {
        email: RenderedEmail::digest(&email)?,
        stories_json,
    })
}

/// The text of sanitised HTML: paragraphs and line breaks kept, tags dropped, entities decoded.
pub fn html_to_text(html: &str) -> String {
    let marked = html
        .replace("</p>", "\n\n")
        .replace("<br>", "\n")
        .replace("<br/>", "\n")
        .replace("</li>", "\n");
    let stripped = ammonia::Builder::empty().clean(&marked).to_string();
    let decoded = stripped
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    decoded
        .split("\n\n")
        .map(|paragraph| paragraph.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n   ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_readable_text() {
        assert_eq!(
            html_to_text(
                "<p>Launch at <strong>10:00</strong> &amp; landing.</p><p>Second &lt;para&gt;</p>"
            ),
            "Launch at 10:00 & landing.\n\n   Second <para>"
        );
        assert_eq!(html_to_text(""), "");
    }
}
