//! `GET /admin/subscribers/export.csv`: every subscriber, streamed.

use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web::Bytes;

use crate::db;
use crate::subscriptions::csv;
use crate::web::admin::{Console, ConsoleError};

pub(super) async fn export(console: Console) -> Result<HttpResponse, ConsoleError> {
    let pool = console.state.pool.clone();
    let operator_id = console.operator.id;
    tracing::info!(operator_id, "console: subscribers exported");
    let stream = futures_util::stream::unfold(Some(csv::Export::new()), move |state| {
        let pool = pool.clone();
        async move {
            let mut export = state?;
            let next = db::run(&pool, move |conn| {
                let chunk = export.next_chunk(conn)?;
                Ok((export, chunk))
            })
            .await;
            match next {
                Ok((export, Some(chunk))) => {
                    Some((Ok::<_, actix_web::Error>(Bytes::from(chunk)), Some(export)))
                }
                Ok((_, None)) => None,
                Err(error) => {
                    // The header is sent; all that can be done is to cut the download short.
                    tracing::error!(%error, operator_id, "console: the export failed midway");
                    Some((
                        Err(actix_web::error::ErrorInternalServerError(
                            "the export failed",
                        )),
                        None,
                    ))
                }
            }
        }
    });
    let filename = format!(
        "spacedigest-subscribers-{}.csv",
        db::now().format("%Y-%m-%d")
    );
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .streaming(stream))
}
