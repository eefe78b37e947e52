//! The exporter's HTTP side: `GET /metrics` (OpenMetrics text) and `GET /` (a page that
//! links to it), served by hyper on the tool's tokio runtime.

use std::{convert::Infallible, sync::Arc};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::CONTENT_TYPE,
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;

use super::exposition;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn respond(registry: &Registry, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, kind: &str, body: String| {
        Response::builder()
            .status(status)
            .header(CONTENT_TYPE, kind)
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response")
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            reply(StatusCode::OK, OPENMETRICS, exposition(registry))
        }
        (&Method::GET | &Method::HEAD, "/") => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            "<html><head><title>huge-fault</title></head><body><h1>huge-fault</h1>\
             <p><a href=\"/metrics\">/metrics</a>: page faults by VMA kind, page-table \
             level and answer, in OpenMetrics text.</p></body></html>\n"
                .into(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: the metrics are at /metrics\n".into(),
        ),
    }
}

/// Serves one accepted connection (HTTP/1.1, keep-alive) until the client closes it.
pub fn serve(stream: tokio::net::TcpStream, registry: Arc<Registry>) {
    tokio::spawn(async move {
        let service = service_fn(move |req: Request<Incoming>| {
            let registry = registry.clone();
            async move { Ok::<_, Infallible>(respond(&registry, &req)) }
        });
        // A client that goes away mid-request is its own business.
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    });
}
