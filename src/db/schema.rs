//! The one schema both backends share. Written by hand: `diesel print-schema` sees one
//! backend at a time, and the migrations under `migrations/{sqlite,postgres}` keep the two
//! physically equivalent.

diesel::table! {
    newsletters (id) {
        id -> BigInt,
        slug -> Text,
        title -> Text,
        description -> Text,
        send_at -> Text,
        timezone -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    subscribers (id) {
        id -> BigInt,
        email -> Text,
        email_key -> Text,
        name -> Nullable<Text>,
        signup_ip -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        consent_note -> Nullable<Text>,
        bounced_at -> Nullable<Timestamp>,
        mailbox_key -> Nullable<Text>,
    }
}

diesel::table! {
    mailboxes (mailbox_key) {
        mailbox_key -> Text,
        last_signup_at -> Timestamp,
    }
}

diesel::table! {
    subscriptions (id) {
        id -> BigInt,
        subscriber_id -> BigInt,
        newsletter_id -> BigInt,
        status -> Text,
        created_at -> Timestamp,
        confirmed_at -> Nullable<Timestamp>,
        unsubscribed_at -> Nullable<Timestamp>,
        updated_at -> Timestamp,
        confirmation_token_hash -> Nullable<Text>,
    }
}

diesel::table! {
    confirmation_tokens (token_hash) {
        token_hash -> Text,
        subscriber_id -> BigInt,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        consumed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    outbound_emails (id) {
        id -> BigInt,
        kind -> Text,
        subscriber_id -> Nullable<BigInt>,
        recipient_email -> Text,
        recipient_name -> Nullable<Text>,
        subject -> Text,
        body_text -> Text,
        body_html -> Text,
        list_unsubscribe -> Nullable<Text>,
        message_id -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        issue_id -> Nullable<BigInt>,
        subscription_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    app_secrets (name) {
        name -> Text,
        value -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    stories (id) {
        id -> BigInt,
        newsletter_id -> BigInt,
        guid -> Text,
        url -> Text,
        title -> Text,
        summary_html -> Text,
        source -> Text,
        published_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    feeds (id) {
        id -> BigInt,
        newsletter_id -> BigInt,
        url -> Text,
        etag -> Nullable<Text>,
        last_modified -> Nullable<Text>,
        last_polled_at -> Nullable<Timestamp>,
        last_success_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    digest_issues (id) {
        id -> BigInt,
        newsletter_id -> BigInt,
        issue_date -> Date,
        subject -> Text,
        body_text -> Text,
        body_html -> Text,
        story_count -> Integer,
        stories_json -> Text,
        created_at -> Timestamp,
        fanned_out_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    operators (id) {
        id -> BigInt,
        email -> Text,
        email_key -> Text,
        password_hash -> Text,
        created_at -> Timestamp,
        password_changed_at -> Timestamp,
    }
}

diesel::table! {
    operator_sessions (id_hash) {
        id_hash -> Text,
        operator_id -> BigInt,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        ip -> Nullable<Text>,
    }
}

diesel::table! {
    login_failures (id) {
        id -> BigInt,
        email_key -> Text,
        ip -> Text,
        failed_at -> Timestamp,
    }
}

diesel::table! {
    bounce_events (id) {
        id -> BigInt,
        subscriber_id -> BigInt,
        kind -> Text,
        source -> Text,
        reason -> Text,
        outbound_email_id -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(bounce_events -> subscribers (subscriber_id));
diesel::joinable!(operator_sessions -> operators (operator_id));
diesel::joinable!(subscriptions -> subscribers (subscriber_id));
diesel::joinable!(subscriptions -> newsletters (newsletter_id));
diesel::joinable!(confirmation_tokens -> subscribers (subscriber_id));
diesel::joinable!(stories -> newsletters (newsletter_id));
diesel::joinable!(feeds -> newsletters (newsletter_id));
diesel::joinable!(digest_issues -> newsletters (newsletter_id));
diesel::joinable!(outbound_emails -> digest_issues (issue_id));

diesel::allow_tables_to_appear_in_same_query!(
    newsletters,
    subscribers,
    mailboxes,
    subscriptions,
    confirmation_tokens,
    outbound_emails,
    app_secrets,
    stories,
    feeds,
    digest_issues,
    operators,
    operator_sessions,
    login_failures,
    bounce_events,
);
