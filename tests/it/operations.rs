//! Operations endpoints apart: with `server.operations_listen` set, `/metrics` and the health
//! checks answer there and not on the payment listener, which keeps the interface (and the
//! back office); without it, all of them share the one listener, as before.

use crate::common::db::TestDb;
use crate::common::hub::{Options, TestHub};

async fn status(http: &reqwest::Client, url: String) -> u16 {
    http.get(url)
        .send()
        .await
        .expect("answers")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_and_health_move_to_their_own_listener() {
    // Port 0: a port chosen in the test and bound by the hub later could be taken in
    // between by another test (seen once in CI: "Address already in use").
    let hub = TestHub::start(
        TestDb::sqlite().await,
        Options {
            server: "operations_listen = \"127.0.0.1:0\"\n".into(),
            ..Options::default()
        },
    )
    .await;
    let ops = hub.operations_url.clone().expect("an operations listener");
    let http = &hub.http;
    // The payment port: the interface works; the operations endpoints are not there.
    hub.new_code(100).await;
    for path in ["/metrics", "/health/live", "/health/ready"] {
        assert_eq!(
            status(http, format!("{}{path}", hub.url)).await,
            404,
            "{path}"
        );
    }
    // The operations port: they are, and the interface is not.
    for path in ["/metrics", "/health/live", "/health/ready"] {
        assert_eq!(status(http, format!("{ops}{path}")).await, 200, "{path}");
    }
    let text = http
        .get(format!("{ops}/metrics"))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("text");
    assert!(text.contains("qrhub_requests_total"), "{text}");
    let create = http
        .post(format!("{ops}/qr/v1/qrCodes"))
        .basic_auth("pos-1", Some(crate::common::hub::POS_PASSWORD))
        .json(&crate::common::hub::qr_request("pos-1", 100))
        .send()
        .await
        .expect("answers")
        .status();
    assert_eq!(create.as_u16(), 404);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn by_default_everything_shares_one_listener() {
    let hub = TestHub::start(TestDb::sqlite().await, Options::default()).await;
    for path in ["/metrics", "/health/live", "/health/ready"] {
        assert_eq!(
            status(&hub.http, format!("{}{path}", hub.url)).await,
            200,
            "{path}"
        );
    }
    hub.stop().await;
}
