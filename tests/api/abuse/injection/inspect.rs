//! What a received message and the SMTP server's command log must look like: the
//! header names each kind of email has and no others, no line break anywhere in a header
//! once decoded, and no command outside the expected conversation.

use std::collections::{BTreeSet, HashMap};

use super::INJECTED;
use crate::support::smtp_server::{CommandLine, ReceivedMessage};

/// Headers each kind of email carries, and no others.
fn expected_headers(kind: &str) -> BTreeSet<String> {
    let common = [
        "From",
        "To",
        "Subject",
        "Message-ID",
        "Date",
        "MIME-Version",
        "Content-Type",
    ];
    let extra: &[&str] = match kind {
        "confirmation" => &[],
        "welcome" => &["List-Unsubscribe", "List-Unsubscribe-Post"],
        // The pre-encoded body's own declaration (7bit: it is quoted-printable inside).
        "digest" => &[
            "List-Id",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
            "Content-Transfer-Encoding",
        ],
        other => panic!("unknown kind {other}"),
    };
    common
        .iter()
        .chain(extra)
        .map(|h| h.to_ascii_lowercase())
        .collect()
}

pub fn kind_of(message: &ReceivedMessage) -> &'static str {
    let subject = message.subject();
    if subject.starts_with("Confirm your subscription") {
        "confirmation"
    } else if subject.starts_with("You're subscribed") {
        "welcome"
    } else {
        "digest"
    }
}

/// Problems with one message's header block, one line each.
pub fn header_problems(message: &ReceivedMessage) -> Vec<String> {
    let mut problems = Vec::new();
    let kind = kind_of(message);
    let lines = message.raw_header_lines();
    let names: Vec<String> = lines
        .iter()
        .map(|line| {
            line.split_once(':')
                .map_or(line.as_str(), |(name, _)| name)
                .to_ascii_lowercase()
        })
        .collect();
    let set: BTreeSet<String> = names.iter().cloned().collect();
    let expected = expected_headers(kind);
    for extra in set.difference(&expected) {
        problems.push(format!("{kind}: extra header {extra:?}"));
    }
    for missing in expected.difference(&set) {
        problems.push(format!("{kind}: missing header {missing:?}"));
    }
    if names.len() != set.len() {
        problems.push(format!("{kind}: a header appears twice: {names:?}"));
    }
    // Every line of the header block that starts a field (continuation lines start with
    // folding whitespace): none may begin with what followed a line break in the input.
    let text = String::from_utf8_lossy(&message.data);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    for line in head.split('\n') {
        let line = line.trim_end_matches('\r');
        if line
            .to_ascii_lowercase()
            .starts_with(&INJECTED.to_ascii_lowercase())
        {
            problems.push(format!(
                "{kind}: a header line starts with the input: {line:?}"
            ));
        }
    }
    if head.contains('\r') && head.replace("\r\n", "").contains('\r') {
        problems.push(format!("{kind}: a bare CR in the header block"));
    }
    if head.replace("\r\n", "").contains('\n') {
        problems.push(format!("{kind}: a bare LF in the header block"));
    }
    // Decoded, as a mail client shows them.
    for name in &set {
        for value in message.header_all(name) {
            if value.contains(['\r', '\n', '\u{2028}', '\u{2029}', '\u{85}']) {
                problems.push(format!("{kind}: {name} decodes to a line break: {value:?}"));
            }
        }
    }
    problems
}

/// Command lines that are not part of the expected conversation: per connection EHLO,
/// then for each message MAIL FROM our sender, RCPT TO one known reader, DATA; RSET, NOOP
/// and QUIT anywhere.
pub fn injected_commands(
    commands: &[CommandLine],
    sender: &str,
    readers: &BTreeSet<String>,
) -> Vec<String> {
    let mut by_connection: HashMap<usize, Vec<&CommandLine>> = HashMap::new();
    for command in commands {
        by_connection
            .entry(command.connection)
            .or_default()
            .push(command);
    }
    let mut injected = Vec::new();
    for (connection, lines) in by_connection {
        let mut greeted = false;
        // 0: between messages, 1: after MAIL, 2: after RCPT.
        let mut state = 0;
        for line in lines {
            let verb = line.verb();
            let argument = line.line.split_once(':').map(|(_, a)| a.trim());
            let address =
                argument.map(|a| a.trim_start_matches('<').split('>').next().unwrap_or(""));
            let ok = match verb.as_str() {
                "EHLO" if state == 0 => {
                    greeted = true;
                    true
                }
                "MAIL" if greeted && state == 0 && address == Some(sender) => {
                    state = 1;
                    true
                }
                "RCPT"
                    if state == 1
                        && address.is_some_and(|a| readers.contains(&a.to_ascii_lowercase())) =>
                {
                    state = 2;
                    true
                }
                "DATA" if state == 2 => {
                    state = 0;
                    true
                }
                "RSET" | "NOOP" | "QUIT" => {
                    state = 0;
                    true
                }
                _ => false,
            };
            if !ok {
                injected.push(format!("connection {connection}: {:?}", line.line));
            }
        }
    }
    injected
}
