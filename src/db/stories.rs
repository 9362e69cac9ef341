//! Stories: what a digest is made of, one per (newsletter, guid).

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::stories;
use super::{DbConnection, write_transaction};
use crate::on_backend;

/// A story as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = stories)]
pub struct Story {
    /// Row id.
    pub id: i64,
    /// The newsletter it belongs to.
    pub newsletter_id: i64,
    /// The feed's id for the item (else its link): what makes a re-import an update.
    pub guid: String,
    /// Absolute http(s) link to the story.
    pub url: String,
    /// Plain text, at most 300 characters.
    pub title: String,
    /// Sanitised HTML (a small safe subset), possibly empty.
    pub summary_html: String,
    /// Where it came from: the feed's title or host.
    pub source: String,
    /// Publication time, UTC; for an undated item, when it was first seen.
    pub published_at: NaiveDateTime,
    /// First stored.
    pub created_at: NaiveDateTime,
    /// Last changed.
    pub updated_at: NaiveDateTime,
}

/// A story to insert or update, already checked and sanitised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingStory {
    /// Identity within the newsletter.
    pub guid: String,
    /// Absolute http(s) link.
    pub url: String,
    /// Plain-text title.
    pub title: String,
    /// Sanitised summary HTML.
    pub summary_html: String,
    /// Source name.
    pub source: String,
    /// Publication time, UTC; `None` when the item has none.
    pub published_at: Option<NaiveDateTime>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertCounts {
    /// Stories stored for the first time.
    pub new: usize,
    /// Stories whose stored copy changed.
    pub updated: usize,
    /// Stories stored already, exactly so.
    pub unchanged: usize,
    /// Of the new ones, those without a date of their own, dated now.
    pub new_undated: usize,
}

#[derive(Insertable)]
#[diesel(table_name = stories)]
struct NewStoryRow<'a> {
    newsletter_id: i64,
    guid: &'a str,
    url: &'a str,
    title: &'a str,
    summary_html: &'a str,
    source: &'a str,
    published_at: NaiveDateTime,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// Stories looked up per query: well below every backend's limit on bound parameters.
const LOOKUP_BATCH: usize = 200;

/// Inserts new stories and updates changed ones, by (newsletter, guid), in one write
/// transaction. An undated story is dated `now` when new and keeps its stored time after;
/// an unchanged story is not written at all.
pub fn upsert(
    conn: &mut DbConnection,
    newsletter_id: i64,
    items: &[IncomingStory],
    now: NaiveDateTime,
) -> QueryResult<UpsertCounts> {
    write_transaction(conn, |conn| upsert_within(conn, newsletter_id, items, now))
}

/// [`upsert`] for a caller that holds a write transaction already (SQLite cannot nest
/// `BEGIN IMMEDIATE`), e.g. to record a feed's poll in the same commit.
pub fn upsert_within(
    conn: &mut DbConnection,
    newsletter_id: i64,
    items: &[IncomingStory],
    now: NaiveDateTime,
) -> QueryResult<UpsertCounts> {
    let mut counts = UpsertCounts::default();
    for batch in items.chunks(LOOKUP_BATCH) {
        let guids: Vec<&str> = batch.iter().map(|i| i.guid.as_str()).collect();
        let mut stored: HashMap<String, Story> = stories::table
            .filter(stories::newsletter_id.eq(newsletter_id))
            .filter(stories::guid.eq_any(&guids))
            .select(Story::as_select())
            .load(conn)?
            .into_iter()
            .map(|story| (story.guid.clone(), story))
            .collect();
        for item in batch {
            if let Some(story) = stored.remove(&item.guid) {
                let changed = update_if_changed(conn, &story, item, now)?;
                count_existing(&mut counts, changed);
                stored.insert(item.guid.clone(), apply(story, item, now));
            } else if insert_if_absent(conn, newsletter_id, item, now)? {
                counts.new += 1;
                if item.published_at.is_none() {
                    counts.new_undated += 1;
                }
            } else {
                // Another writer stored it since the lookup (PostgreSQL lets two
                // imports run at once): compare with what that one wrote.
                let story = by_guid(conn, newsletter_id, &item.guid)?;
                let changed = update_if_changed(conn, &story, item, now)?;
                count_existing(&mut counts, changed);
            }
        }
    }
    Ok(counts)
}

fn count_existing(counts: &mut UpsertCounts, changed: bool) {
    if changed {
        counts.updated += 1;
    } else {
        counts.unchanged += 1;
    }
}

/// The stored copy as it is after `item` was applied (for duplicates within one call).
fn apply(mut story: Story, item: &IncomingStory, now: NaiveDateTime) -> Story {
    if differs(&story, item) {
        story.url.clone_from(&item.url);
        story.title.clone_from(&item.title);
        story.summary_html.clone_from(&item.summary_html);
        story.source.clone_from(&item.source);
        story.published_at = item.published_at.unwrap_or(story.published_at);
        story.updated_at = now;
    }
    story
}

fn differs(story: &Story, item: &IncomingStory) -> bool {
    story.url != item.url
        || story.title != item.title
        || story.summary_html != item.summary_html
        || story.source != item.source
        || item.published_at.is_some_and(|t| t != story.published_at)
}

fn update_if_changed(
    conn: &mut DbConnection,
    story: &Story,
    item: &IncomingStory,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    if !differs(story, item) {
        return Ok(false);
    }
    diesel::update(stories::table.find(story.id))
        .set((
            stories::url.eq(&item.url),
            stories::title.eq(&item.title),
            stories::summary_html.eq(&item.summary_html),
            stories::source.eq(&item.source),
            stories::published_at.eq(item.published_at.unwrap_or(story.published_at)),
            stories::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(true)
}

/// Inserts unless the guid is taken; true when it inserted.
fn insert_if_absent(
    conn: &mut DbConnection,
    newsletter_id: i64,
    item: &IncomingStory,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let row = NewStoryRow {
        newsletter_id,
        guid: &item.guid,
        url: &item.url,
        title: &item.title,
        summary_html: &item.summary_html,
        source: &item.source,
        published_at: item.published_at.unwrap_or(now),
        created_at: now,
        updated_at: now,
    };
    let inserted = on_backend!(conn, c => diesel::insert_into(stories::table)
        .values(&row)
        .on_conflict((stories::newsletter_id, stories::guid))
        .do_nothing()
        .execute(c))?;
    Ok(inserted > 0)
}

fn by_guid(conn: &mut DbConnection, newsletter_id: i64, guid: &str) -> QueryResult<Story> {
    stories::table
        .filter(stories::newsletter_id.eq(newsletter_id))
        .filter(stories::guid.eq(guid))
        .select(Story::as_select())
        .first(conn)
}

/// The newsletter's stories published in `[from_utc, to_utc)`, oldest first.
pub fn published_between(
    conn: &mut DbConnection,
    newsletter_id: i64,
    from_utc: NaiveDateTime,
    to_utc: NaiveDateTime,
) -> QueryResult<Vec<Story>> {
    stories::table
        .filter(stories::newsletter_id.eq(newsletter_id))
        .filter(stories::published_at.ge(from_utc))
        .filter(stories::published_at.lt(to_utc))
        .order((stories::published_at.asc(), stories::id.asc()))
        .select(Story::as_select())
        .load(conn)
}

/// The newsletter's stories, oldest first: those in `[from, to)` UTC when bounds are
/// given (a day from [`crate::domain::day_bounds_utc`]), else all of them.
pub fn list(
    conn: &mut DbConnection,
    newsletter_id: i64,
    bounds: Option<(NaiveDateTime, NaiveDateTime)>,
) -> QueryResult<Vec<Story>> {
    match bounds {
        Some((from, to)) => published_between(conn, newsletter_id, from, to),
        None => stories::table
            .filter(stories::newsletter_id.eq(newsletter_id))
            .order((stories::published_at.asc(), stories::id.asc()))
            .select(Story::as_select())
            .load(conn),
    }
}

/// The story with this id.
pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Story>> {
    stories::table
        .find(id)
        .select(Story::as_select())
        .first(conn)
        .optional()
}

/// An operator's edit of a story, already checked and sanitised. The guid stays: it is
/// the story's identity for the feed it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoryEdit {
    /// Absolute http(s) link.
    pub url: String,
    /// Plain-text title.
    pub title: String,
    /// Sanitised summary HTML.
    pub summary_html: String,
    /// Source name.
    pub source: String,
    /// Publication time, UTC.
    pub published_at: NaiveDateTime,
}

/// Applies an edit; false when the story no longer exists.
pub fn update(
    conn: &mut DbConnection,
    id: i64,
    edit: &StoryEdit,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let changed = diesel::update(stories::table.find(id))
        .set((
            stories::url.eq(&edit.url),
            stories::title.eq(&edit.title),
            stories::summary_html.eq(&edit.summary_html),
            stories::source.eq(&edit.source),
            stories::published_at.eq(edit.published_at),
            stories::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(changed > 0)
}

/// Deletes a story; false when it did not exist. Issues already made keep their copy.
pub fn delete(conn: &mut DbConnection, id: i64) -> QueryResult<bool> {
    Ok(diesel::delete(stories::table.find(id)).execute(conn)? > 0)
}

/// The latest publication time among the newsletter's stories stored or changed at or
/// after `since` (after an import: the day worth looking at).
pub fn latest_written_since(
    conn: &mut DbConnection,
    newsletter_id: i64,
    since: NaiveDateTime,
) -> QueryResult<Option<NaiveDateTime>> {
    stories::table
        .filter(stories::newsletter_id.eq(newsletter_id))
        .filter(stories::updated_at.ge(since))
        .select(diesel::dsl::max(stories::published_at))
        .first(conn)
}
