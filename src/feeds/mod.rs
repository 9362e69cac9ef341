//! Stories in: RSS 2.0, RSS 1.0, Atom and JSON Feed, read from a file or fetched, every
//! field checked and every summary sanitised before it is stored; and the poller that
//! keeps registered feeds flowing in.

mod declaration;
mod document;
pub mod fetch;
pub mod import;
pub mod parse;
pub mod poller;
pub mod sanitise;

pub use fetch::{FetchError, Fetched, Fetcher, Validators};
pub use import::{ImportError, ImportReport};
pub use parse::{
    FeedError, FeedOrigin, MAX_FEED_BYTES, MAX_ITEMS_PER_IMPORT, ParsedFeed, parse_feed,
};
pub use poller::{PollOutcome, PollReport, poll_all_once, poll_feed, run_poller};
